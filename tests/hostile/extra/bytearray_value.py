"""A bytearray the app goes on changing: rendered at the call."""

from typing import Any


def make_extra() -> dict[str, Any]:
    return {"action": "UPLOAD", "buffer": bytearray(b"abc"), "nested": {"b": bytearray(3)}}


EXPECT = {"extra": {"buffer": "<unserialisable bytearray> b'abc'"}}
