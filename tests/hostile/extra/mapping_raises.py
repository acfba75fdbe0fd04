"""A Mapping subclass whose items() raises (a lazy ORM proxy whose session is closed)."""

from collections.abc import Iterator, Mapping
from typing import Any


class Detached(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise LookupError("session closed")

    def __iter__(self) -> Iterator[str]:
        raise LookupError("session closed")

    def __len__(self) -> int:
        raise LookupError("session closed")

    def __repr__(self) -> str:
        raise LookupError("session closed")


EXTRA: dict[str, Any] = {"action": "VIEW", "extra": Detached(), "row": Detached(),
                         "changes": {"a": [Detached(), 1]}}
EXPECT = {"extra": {"row": "<unreadable Detached>"}, "reported": "could not be read"}
