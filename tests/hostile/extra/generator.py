"""A generator: reading it consumes the app's values; it must be rendered, never iterated."""

from collections.abc import Iterator
from typing import Any


def make_extra() -> dict[str, Any]:
    def rows() -> Iterator[int]:
        yield from range(3)

    return {"action": "EXPORT", "rows": rows()}


EXPECT = {"extra_startswith": {"rows": "<unserialisable generator>"}, "reported": "generator"}
