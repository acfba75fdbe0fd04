"""What a log call keeps of its ``extra=`` values: a bounded deep copy, made on the app's thread.

The record is built later, on the publisher's thread; whatever the app changes after
``logger.info`` returns must not show in it. Containers (dicts, lists, tuples, sets, other
mappings) are copied level by level; values that cannot change (strings, numbers, dates,
UUIDs, decimals, IP addresses) are kept as they are; anything else is an app object and is
turned into a string now, since calling its methods later would read a later state.

The copy is bounded so that whatever comes out is a value the consumer's strict decoder
accepts unchanged (:mod:`audit_logging._decode`): at most :data:`MAX_ITEMS` entries per call,
containers cut below a depth the record's check allows, integers no JSON reader chokes on.
What is cut is replaced by a short string and its field listed in ``truncated``.

With ``strict=True`` (``log_audit_event``) a value that needs repair raises
:class:`RecordError` instead, naming where it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import ipaddress
import uuid
from collections.abc import Mapping
from typing import Any, Final

from audit_logging.errors import RecordError
from audit_logging.record import INPUT_FIELDS

# Entries (dict items, list and set items) copied per log call: enough for any audit
# record (extra holds 16 KiB of JSON), well under the decoder's 10,000 keys per message.
MAX_ITEMS: Final = 5_000
# The record's check refuses values nested more than 32 levels below a record field.
# A value given in extra= lands at most two levels below its field (changes -> name ->
# [old, new]; a non-object extra wrapped in an object), so its depth is counted from 2,
# and a container that would hold level 33 is replaced by a string.
_FIRST_DEPTH: Final = 2
_CUT_DEPTH: Final = 32
# Python refuses to print integers over 4,300 digits, and OpenSearch's JSON reader refuses
# numbers over 1,000 characters; 3,000 bits is about 900 digits.
MAX_INT_BITS: Final = 3_000
# Problems reported for one log call; a hostile value could otherwise log thousands.
_REPORTED: Final = 10

_SCALARS: Final = (str, int, float, bool, type(None))
_IMMUTABLE: Final = (
    dt.datetime,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
    decimal.Decimal,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
)
# The fast path's leaves, and those of them needing no further look.
_LEAVES: Final = frozenset({str, int, float, bool, type(None)})
# Immutable values kept as they are (int is bounded apart).
PLAIN_TYPES: Final = frozenset({str, type(None), bool, float})
_STRINGS: Final = PLAIN_TYPES
_INT_BOUND: Final = 1 << MAX_INT_BITS


class _NotPlain(Exception):  # noqa: N818 - a signal inside this module, never raised out
    """The fast copy met something that needs the careful one."""


class Snapshot:
    """One log call's copy: call :meth:`field` for each ``extra=`` value, then read
    :attr:`problems` (what was repaired) and :attr:`truncated` (fields that lost content)."""

    __slots__ = ("_items", "_strict", "problems", "truncated")

    def __init__(self, *, strict: bool = False) -> None:
        self._strict = strict
        self._items = 0
        self.problems: list[str] = []
        self.truncated: list[str] = []

    def field(self, key: Any, value: Any) -> Any:
        """The copy of the value given for ``key`` in ``extra=`` (or a keyword of
        ``log_audit_event``)."""
        taken = self._items
        try:
            return self._plain_copy(value, _FIRST_DEPTH)
        except (_NotPlain, RuntimeError):
            # Something needs a look (or another thread changed a dict while it was
            # read): the careful copy below, from the start of this value.
            self._items = taken
        name = key if isinstance(key, str) else _short_repr(key)
        in_record = name if name in INPUT_FIELDS else "extra"
        path = name if name in INPUT_FIELDS else f"extra.{name}"
        return self._copy(in_record, path, value, _FIRST_DEPTH)

    def _plain_copy(self, value: Any, depth: int) -> Any:  # noqa: PLR0912 - inlined for speed
        """The copy of plain data (dicts with string keys, lists, tuples, scalars) in as
        few steps as possible: what nearly every log call holds. Raises ``_NotPlain`` at
        anything else, and where a limit is reached."""
        kind = type(value)
        if kind in _LEAVES:
            if kind is int and not -_INT_BOUND < value < _INT_BOUND:
                raise _NotPlain
            return value
        if depth >= _CUT_DEPTH:
            raise _NotPlain
        if kind is dict:
            self._items += len(value)
            if self._items > MAX_ITEMS:
                raise _NotPlain
            out = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise _NotPlain
                leaf = type(item)
                if leaf in _STRINGS or (leaf is int and -_INT_BOUND < item < _INT_BOUND):
                    out[key] = item
                else:
                    out[key] = self._plain_copy(item, depth + 1)
            return out
        if kind is list or kind is tuple:
            self._items += len(value)
            if self._items > MAX_ITEMS:
                raise _NotPlain
            copied = list(value)
            for i, item in enumerate(copied):
                if type(item) not in _STRINGS:
                    copied[i] = self._plain_copy(item, depth + 1)
            return copied
        raise _NotPlain

    def _copy(  # noqa: PLR0911 - one flat dispatch on the value's type
        self, field: str, path: str, value: Any, depth: int
    ) -> Any:
        kind = type(value)
        if kind is str or kind is bool or value is None or kind is float:
            return value
        if kind is int:
            return value if value.bit_length() <= MAX_INT_BITS else self._huge_int(path, value)
        if isinstance(value, _IMMUTABLE):
            return value
        if isinstance(value, _SCALARS):
            # A subclass (an IntEnum, a markup string): its plain value, read now.
            return self._copy(field, path, _plain(value), depth)
        if isinstance(value, (Mapping, list, tuple, set, frozenset)):
            if depth >= _CUT_DEPTH:
                self._cut(field, path, f"nests deeper than {_CUT_DEPTH} levels")
                return f"<{kind.__name__} nested too deep: cut>"
            if isinstance(value, Mapping):
                return self._mapping(field, path, value, depth)
            return self._sequence(field, path, value, depth)
        return self._object(path, value)

    def _mapping(self, field: str, path: str, value: Mapping[Any, Any], depth: int) -> Any:
        try:
            # tuple() over a plain dict runs no Python code, so another thread cannot
            # change the dict half-way through.
            pairs = tuple(value.items())
        except Exception as exc:  # noqa: BLE001 - an app's mapping may raise anything
            self._problem(path, f"could not be read ({type(exc).__name__})")
            return f"<unreadable {type(value).__name__}>"
        pairs = self._budget(field, path, pairs)
        out: dict[Any, Any] = {}
        for given, item in pairs:
            key = self._key(path, given)
            label = key if type(key) is str else repr(key)
            out[key] = self._copy(field, f"{path}.{label}", item, depth + 1)
        return out

    def _key(self, path: str, key: Any) -> Any:
        """A key JSON can hold as an object key: a string, or a scalar that becomes one."""
        if not isinstance(key, _SCALARS) or (
            isinstance(key, int) and key.bit_length() > MAX_INT_BITS
        ):
            self._problem(f"{path}.{_short_repr(key)}", "has a key that is not a string")
            return _short_repr(key)
        return key if type(key) in _SCALARS else _plain(key)

    def _sequence(self, field: str, path: str, value: Any, depth: int) -> Any:
        try:
            items = tuple(value)  # one step for a plain list or set, as for a dict above
        except Exception as exc:  # noqa: BLE001 - a subclass's __iter__ may raise anything
            self._problem(path, f"could not be read ({type(exc).__name__})")
            return f"<unreadable {type(value).__name__}>"
        items = self._budget(field, path, items)
        copied = [
            self._copy(field, f"{path}[{i}]", item, depth + 1) for i, item in enumerate(items)
        ]
        if isinstance(value, (set, frozenset)):
            # A set has no order; the record gets one that does not depend on hashing.
            with contextlib.suppress(Exception):
                copied.sort(key=repr)
        return copied

    def _budget(self, field: str, path: str, items: tuple[Any, ...]) -> tuple[Any, ...]:
        left = MAX_ITEMS - self._items
        if len(items) > left:
            # Like an over-long string, too many items is cut, never an error.
            self._cut(field, path, f"holds more than {MAX_ITEMS} items in all", strict=False)
            items = items[: max(left, 0)]
        self._items += len(items)
        return items

    def _object(self, path: str, value: Any) -> str:
        name = type(value).__name__
        if path in INPUT_FIELDS:
            self._problem(path, f"must be a string, got {name}")
            return _short_repr(value, 4096)
        self._problem(path, f"has a value of type {name}, which is not JSON-serialisable")
        return f"<unserialisable {name}> {_short_repr(value, 200)}"

    def _huge_int(self, path: str, value: int) -> str:
        self._problem(path, f"is an integer of {value.bit_length()} bits, over {MAX_INT_BITS}")
        return f"<int of {value.bit_length()} bits>"

    def _cut(self, field: str, path: str, message: str, *, strict: bool = True) -> None:
        if self._strict and strict:
            raise RecordError(path, message)
        if field not in self.truncated:
            self.truncated.append(field)
        self._note(f"Audit record field '{path}' {message}; cut")

    def _problem(self, path: str, message: str) -> None:
        if self._strict:
            raise RecordError(path, message)
        self._note(f"Audit record field '{path}' {message}; repaired")

    def _note(self, message: str) -> None:
        if len(self.problems) < _REPORTED:
            self.problems.append(message)
        elif len(self.problems) == _REPORTED:
            self.problems.append("(further problems in this record not reported)")


def merge_truncated(given: Any, cut: list[str]) -> list[Any]:
    """The ``truncated`` value for a record: what the call gave, plus the fields cut here."""
    names = list(given) if isinstance(given, list) else []
    return names + [name for name in cut if name not in names]


def _plain(value: Any) -> Any:
    """An instance of a subclass of str, int or float as the base type (its own
    ``__str__``/``__int__`` may be overridden, the base's may not)."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return None


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            # Only the start: a megabyte of bytes is not rendered to show 80 characters.
            value = bytes(value[:limit])
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - an app's __repr__ may raise anything
        text = f"<{type(value).__name__}: repr failed with {type(exc).__name__}>"
    if type(text) is not str:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
