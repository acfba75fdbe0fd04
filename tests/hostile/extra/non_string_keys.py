"""Keys JSON cannot hold as they are: ints, floats, None, tuples, a frozenset, an object."""

from typing import Any


class Key:
    def __repr__(self) -> str:
        return "Key()"


EXTRA: dict[str, Any] = {
    "action": "UPDATE",
    "extra": {1: "int", 2.5: "float", None: "none", False: "bool", (1, "a"): "tuple",
              frozenset({1}): "frozenset", Key(): "object"},
    "changes": {("a", "b"): [1, 2], 7: [None, "x"]},
}
EXPECT = {"extra": {"1": "int", "2.5": "float", "null": "none", "false": "bool"},
          "reported": "not a string"}
