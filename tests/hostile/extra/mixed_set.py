"""A set of mixed types (no order between them) and a frozenset holding a tuple."""

from typing import Any

EXTRA: dict[str, Any] = {
    "action": "TAG",
    "tags": {1, "a", None, 2.5, (1, 2), frozenset({"x"})},
    "extra": {"fs": frozenset({("k", 1)})},
}
EXPECT = {"extra": {"fs": [["k", 1]]}}
