"""An object whose __repr__ raises: the repair must not raise in its turn."""

from typing import Any


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


EXTRA: dict[str, Any] = {"action": "VIEW", "thing": Broken(), "object_repr": Broken()}
EXPECT = {"extra_startswith": {"thing": "<unserialisable Broken>"}, "reported": "Broken"}
