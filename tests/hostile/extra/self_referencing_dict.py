"""A dict that contains itself: a naive deep copy or JSON encoder recurses forever."""

from typing import Any


def make_extra() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    return {"action": "UPDATE", "extra": loop}


EXPECT = {"truncated": ["extra"], "extra": {"name": "loop"}, "reported": "nests deeper"}
