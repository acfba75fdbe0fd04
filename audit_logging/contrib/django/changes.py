"""What a model change looks like in a record: field values made JSON-safe and bounded,
masked where asked, and the field-level difference of two snapshots of a row."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.duration import duration_iso_string

# What a masked field shows instead of its value, whatever the value.
MASK: Final = "********"
# Characters of one value kept in ``changes``: a record's changes hold 64 KiB of JSON, so
# one huge text field cut here leaves room for the others (the record would otherwise cut
# the whole object to one string).
VALUE_LIMIT: Final = 8 * 1024
# A JSONField value nested deeper than this is kept as its JSON text (bounded).
_JSON_DEPTH: Final = 8
# Integers past this many bits become strings: no JSON reader downstream chokes on them.
_INT_BITS: Final = 63

# A row as read: field attname -> the Python value Django holds.
Row = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class TrackedFields:
    """The fields of a registered model whose changes are recorded."""

    fields: tuple[models.Field[Any, Any], ...]
    masked: frozenset[str]
    # Fields that change on every save (auto_now): shown only beside another change.
    quiet: frozenset[str]

    @property
    def attnames(self) -> list[str]:
        return [field.attname for field in self.fields]

    def only(self, names: Iterable[str] | None) -> tuple[models.Field[Any, Any], ...]:
        """The tracked fields among ``names`` (field names or attnames); all if None."""
        if names is None:
            return self.fields
        wanted = set(names)
        return tuple(f for f in self.fields if f.name in wanted or f.attname in wanted)


class Rendering:
    """Renders the values of one record's ``changes``, noting the fields whose value was cut."""

    def __init__(self, tracked: TrackedFields) -> None:
        self._tracked = tracked
        self.cut: list[str] = []

    def value(self, field: models.Field[Any, Any], value: Any) -> Any:
        if field.name in self._tracked.masked and value is not None:
            return MASK
        # As the column holds it: an instance may still hold what the app assigned (1 for
        # a DecimalField, a string for a date) until it is read again.
        shown, cut = json_value(field, _normalized(field, value))
        if cut and field.name not in self.cut:
            self.cut.append(field.name)
        return shown

    def related(self, name: str, pks: Iterable[Any]) -> Any:
        """A many-to-many relation's primary keys, sorted, as one value of ``changes``."""
        if name in self._tracked.masked:
            return MASK
        shown, cut = json_value(None, [json_value(None, pk)[0] for pk in sorted_keys(pks)])
        if cut and name not in self.cut:
            self.cut.append(name)
        return shown

    def created(self, fields: Iterable[models.Field[Any, Any]], row: Row) -> dict[str, Any]:
        return {f.name: [None, self.value(f, row[f.attname])] for f in fields if f.attname in row}

    def deleted(self, fields: Iterable[models.Field[Any, Any]], row: Row) -> dict[str, Any]:
        return {f.name: [self.value(f, row[f.attname]), None] for f in fields if f.attname in row}

    def changed(
        self, fields: Iterable[models.Field[Any, Any]], old: Row, new: Row
    ) -> dict[str, Any]:
        """``{name: [old, new]}`` for the fields whose value differs; empty when only quiet
        (auto_now) fields changed, so a save that changed nothing records nothing."""
        found: dict[str, Any] = {}
        for field in fields:
            if field.attname not in old or field.attname not in new:
                continue
            before, after = old[field.attname], new[field.attname]
            if not same(field, before, after):
                found[field.name] = [self.value(field, before), self.value(field, after)]
        if set(found) <= self._tracked.quiet:
            return {}
        return found


def sorted_keys(keys: Iterable[Any]) -> list[Any]:
    """Primary keys in their natural order (numbers as numbers), whatever their type."""
    listed = list(keys)
    try:
        return sorted(listed)
    except TypeError:
        return sorted(listed, key=str)


def same(field: models.Field[Any, Any], old: Any, new: Any) -> bool:
    """Whether two values of ``field`` are the same stored value: the instance may hold what
    the app assigned ("10.5" for a DecimalField), the database what it stored."""
    try:
        return bool(_normalized(field, old) == _normalized(field, new))
    except Exception:  # noqa: BLE001 - a custom field's values may refuse to compare
        return json_value(field, old) == json_value(field, new)


def _normalized(field: models.Field[Any, Any], value: Any) -> Any:
    if value is None or isinstance(field, models.JSONField):
        return value
    try:
        return field.to_python(value)
    except (ValidationError, TypeError, ValueError, decimal.InvalidOperation):
        return value


def json_value(  # noqa: PLR0911 - one flat dispatch on the value's type
    field: models.Field[Any, Any] | None, value: Any
) -> tuple[Any, bool]:
    """``value`` as plain JSON (a foreign key is its primary key value already, read by
    attname) and whether it was cut to :data:`VALUE_LIMIT`."""
    if value is None or isinstance(value, bool):
        return value, False
    if isinstance(value, int):
        return (value, False) if value.bit_length() <= _INT_BITS else (str(value), False)
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (repr(value), False)
    if isinstance(value, str):
        return _bounded(value)
    if isinstance(value, decimal.Decimal):
        return str(_quantized(field, value)), False
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(), False
    if isinstance(value, dt.timedelta):
        return duration_iso_string(value), False
    if isinstance(value, uuid.UUID):
        return str(value), False
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Binary content may be anything (a key, a file); its size says that it changed.
        return f"<{len(value)} bytes>", False
    if isinstance(value, (Mapping, list, tuple)):
        return _json_document(value)
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a custom field's value may fail to print
        return f"<unprintable {type(value).__name__}>", False
    return _bounded(text)


def _quantized(field: models.Field[Any, Any] | None, value: decimal.Decimal) -> decimal.Decimal:
    # "10" assigned and "10.00" stored are the same value: show both as the column holds it.
    places = getattr(field, "decimal_places", None)
    if not isinstance(places, int) or not value.is_finite():
        return value
    try:
        return value.quantize(decimal.Decimal(1).scaleb(-places))
    except decimal.InvalidOperation:
        return value


def _json_document(value: Any) -> tuple[Any, bool]:
    """A JSONField's value: kept as it is when plain, small and shallow, else its JSON text."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, sort_keys=True, default=str)
    except (ValueError, TypeError, RecursionError):
        return _bounded(repr(value)[: VALUE_LIMIT + 1])
    if len(text) > VALUE_LIMIT or _depth(value) > _JSON_DEPTH:
        return _bounded(text)
    return json.loads(text), False


def _depth(value: Any, level: int = 0) -> int:
    if level > _JSON_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, (list, tuple)):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level


def _bounded(text: str) -> tuple[str, bool]:
    if len(text) <= VALUE_LIMIT:
        return text, False
    return f"{text[:VALUE_LIMIT]}… <{len(text)} characters: cut>", True
