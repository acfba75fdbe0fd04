"""An object whose __str__ and __repr__ return 10 MB: the record keeps a bounded string."""

from typing import Any


class Huge:
    def __str__(self) -> str:
        return "s" * 10_000_000

    def __repr__(self) -> str:
        return "r" * 10_000_000


EXTRA: dict[str, Any] = {"action": "VIEW", "thing": Huge(), "username": Huge()}
EXPECT = {"extra_startswith": {"thing": "<unserialisable Huge> rrr"}, "max_body": 40_000}
