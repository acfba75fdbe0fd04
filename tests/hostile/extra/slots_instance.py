"""An instance of a class with __slots__ (no __dict__) and one with a mutable state."""

from typing import Any


class Point:
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __repr__(self) -> str:
        return f"Point({self.x}, {self.y})"


EXTRA: dict[str, Any] = {"action": "MOVE", "at": Point(1, 2), "extra": {"path": [Point(3, 4)]}}
EXPECT = {"extra": {"at": "<unserialisable Point> Point(1, 2)",
                    "path": ["<unserialisable Point> Point(3, 4)"]}}
