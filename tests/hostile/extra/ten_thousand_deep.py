"""Lists nested 10,000 deep: RecursionError in a recursive copy, repr or the consumer's check."""

from typing import Any


def make_extra() -> dict[str, Any]:
    deep: Any = "bottom"
    for _ in range(10_000):
        deep = [deep]
    return {"action": "UPDATE", "payload": deep}


EXPECT = {"truncated": ["extra"], "reported": "nests deeper"}
