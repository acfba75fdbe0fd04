"""Subclasses of str and int whose own __str__/__int__ lie (markup strings, IntEnums)."""

import enum
from typing import Any


class Markup(str):
    def __str__(self) -> str:
        raise RuntimeError("do not call me")


class Level(enum.IntEnum):
    HIGH = 3


EXTRA: dict[str, Any] = {"action": "EDIT", "html": Markup("<b>x</b>"), "level": Level.HIGH,
                         "user_id": Level.HIGH}
EXPECT = {"extra": {"html": "<b>x</b>", "level": 3}}
