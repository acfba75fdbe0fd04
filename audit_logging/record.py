"""The audit record, schema version 1: its checks (the fields are in :mod:`audit_logging.schema`).

:func:`build_record` is the one place a record is made. With ``report=None`` it is strict
and raises :class:`RecordError` on bad input (``log_audit_event`` and the consumer use it so);
with a ``report`` callback it repairs what it can, says what it repaired, and raises only
when no record can be made (no ``action``) — the logging handler uses it so, because an app's
log call must never fail. Over-long strings are never an error: they are cut to their limit
and named in the record's ``truncated`` list.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from audit_logging import schema
from audit_logging._uuid7 import uuid7_str
from audit_logging.errors import RecordError

SCHEMA_VERSION: Final = 1

# The fields, their order and limits: declared in audit_logging.schema.
STRING_LIMITS: Final[dict[str, int]] = dict(schema.STRING_LIMITS)
# Limits of the object fields, in bytes of their compact UTF-8 JSON.
OBJECT_LIMITS: Final[dict[str, int]] = dict(schema.OBJECT_LIMITS)
# Every field of a record, in column order (Parquet, OpenSearch, the API's detail).
FIELDS: Final = schema.FIELD_NAMES
# Fields a caller may pass to build_record (the rest are filled by it).
INPUT_FIELDS: Final = frozenset(FIELDS)

# A stream message larger than this cannot be a record this library wrote.
MAX_RECORD_BYTES: Final = 512 * 1024

_ID_FIELDS: Final = frozenset({"user_id", "object_id"})
# Used with fullmatch: ``$`` would accept a trailing newline.
_UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_MAX_DEPTH: Final = 32
# Timestamps every sink can hold: OpenSearch's date_nanos and Arrow's nanosecond
# timestamps end on 2262-04-11; nothing audited happened before the Unix epoch.
EARLIEST_TIMESTAMP: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST_TIMESTAMP: Final = dt.datetime(2262, 4, 11, tzinfo=dt.UTC)
_TRUNCATED_KEY: Final = "_truncated_json"

Report = Callable[[str], None]


def new_log_id() -> str:
    return uuid7_str()


def format_timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds: ``2026-11-26T17:52:00.123456Z``."""
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(value: str) -> dt.datetime:
    """An RFC 3339 / ISO 8601 string with a time zone, as an aware UTC datetime.

    Raises ``ValueError`` (never ``OverflowError``) for a moment UTC cannot hold.
    """
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("has no time zone")
    return to_utc(moment)


def to_utc(moment: dt.datetime) -> dt.datetime:
    """An aware datetime in UTC; ``ValueError`` when it falls outside what the sinks hold."""
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is outside the years UTC can hold") from None
    if not EARLIEST_TIMESTAMP <= utc < LATEST_TIMESTAMP:
        raise ValueError(
            f"is outside {EARLIEST_TIMESTAMP:%Y-%m-%d} .. {LATEST_TIMESTAMP:%Y-%m-%d} (UTC)"
        )
    return utc


def build_record(
    fields: Mapping[str, Any],
    *,
    source: str | None = None,
    report: Report | None = None,
    require_ids: bool = False,
) -> dict[str, Any]:
    """A checked record with every field of :data:`FIELDS`, ``None`` where absent.

    ``source`` fills the ``source`` field when ``fields`` has none. ``require_ids`` (the
    consumer's case) refuses a record without ``log_id`` or ``timestamp`` instead of
    making them up, since a made-up id would differ on every replay.
    """
    unknown = [name for name in fields if name not in INPUT_FIELDS]
    if unknown:
        names = ", ".join(sorted(map(str, unknown))[:5])
        message = f"is not a record field (known: {', '.join(FIELDS)}); put it in 'extra'"
        if report is None:
            raise RecordError(names, message)
        report(f"Audit record fields {names} ignored: not record fields; use 'extra'")

    checker = _Checker(report)
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record["truncated"] = checker.truncated

    record["log_id"] = checker.log_id(fields.get("log_id"), required=require_ids)
    record["timestamp"] = checker.timestamp(fields.get("timestamp"), required=require_ids)
    action = fields.get("action")
    if action is None or (isinstance(action, str) and not action.strip()):
        # Nothing can stand in for the action: without it the record says nothing.
        raise RecordError("action", "is required (for example CREATE, UPDATE, DELETE, LOGIN)")
    for name, limit in STRING_LIMITS.items():
        value = fields.get(name)
        if name == "source" and value is None:
            value = source
        record[name] = checker.string(name, value, limit)
    record["ip_address"] = checker.ip_address(fields.get("ip_address"))
    record["changes"] = checker.changes(fields.get("changes"))
    record["extra"] = checker.json_object("extra", fields.get("extra"))
    version = fields.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        checker.problem("schema_version", f"must be {SCHEMA_VERSION}, got {version!r}")
    record["schema_version"] = SCHEMA_VERSION
    checker.previous_truncations(fields.get("truncated"))
    return record


def record_to_json(record: Mapping[str, Any]) -> bytes:
    """The wire and archive form: one compact UTF-8 JSON object."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def record_from_json(body: bytes) -> dict[str, Any]:
    """Parse and strictly check one record as read from the stream; ``RecordError`` if not."""
    from audit_logging._decode import Rejection, decode_record  # _decode imports this module

    result = decode_record(body)
    if isinstance(result, Rejection):
        raise RecordError("body", str(result))
    return result


class _Checker:
    """Checks one record's fields, repairing (and reporting) or raising."""

    def __init__(self, report: Report | None) -> None:
        self.report = report
        self.truncated: list[str] = []

    def problem(self, field: str, message: str) -> None:
        if self.report is None:
            raise RecordError(field, message)
        self.report(f"Audit record field '{field}' {message}; repaired")

    def mark_truncated(self, field: str) -> None:
        if field not in self.truncated:
            self.truncated.append(field)

    def log_id(self, value: Any, *, required: bool) -> str:
        if value is None:
            if required:
                raise RecordError("log_id", "is required")
            return new_log_id()
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str) and _UUID_RE.fullmatch(value):
            return value.lower()
        self.problem("log_id", f"must be a UUID string, got {_short_repr(value)}")
        return new_log_id()

    def timestamp(self, value: Any, *, required: bool) -> str:
        if value is None:
            if required:
                raise RecordError("timestamp", "is required")
            return format_timestamp(dt.datetime.now(dt.UTC))
        moment: dt.datetime | None = None
        reason = f"must be an RFC 3339 string, got {_short_repr(value)}"
        try:
            if isinstance(value, dt.datetime):
                if value.tzinfo is None or value.utcoffset() is None:
                    self.problem("timestamp", "is a naive datetime; give it a time zone (UTC)")
                    value = value.replace(tzinfo=dt.UTC)
                moment = to_utc(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                # Range first: math.isfinite(10**400) raises OverflowError.
                if 0 <= value < LATEST_TIMESTAMP.timestamp() and math.isfinite(value):
                    moment = dt.datetime.fromtimestamp(value, dt.UTC)
                else:
                    reason = f"is outside the seconds the sinks hold: {_short_repr(value)}"
            elif isinstance(value, str) and len(value) <= 64:
                moment = parse_timestamp(value)
        except ValueError as exc:
            text = str(exc)
            if text.startswith(("has no time zone", "is outside")):
                reason = f"{text}: {_short_repr(value)}"
            else:
                reason = f"is not RFC 3339: {_short_repr(value)}"
        if moment is None:
            self.problem("timestamp", reason)
            return format_timestamp(dt.datetime.now(dt.UTC))
        return format_timestamp(moment)

    def string(self, field: str, value: Any, limit: int) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            # Apps often hold ids as integers or UUIDs; those convert without ambiguity.
            if field in _ID_FIELDS and (
                isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool)
            ):
                value = str(value)
            else:
                self.problem(field, f"must be a string, got {type(value).__name__}")
                value = _short_repr(value, 4096)
        text = _valid_unicode(str(value))
        if len(text) > limit:
            text = text[:limit]
            self.mark_truncated(field)
        return text

    def ip_address(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return str(value)
        try:
            # "%" starts an IPv6 scope id, which ipaddress takes with any characters in it
            # (CR, LF): it names an interface of the sender, not where a request came from.
            if not isinstance(value, str) or len(value) > 64 or "%" in value:
                raise ValueError
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            self.problem("ip_address", f"is not an IPv4 or IPv6 address: {_short_repr(value)}")
            return None

    def changes(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(
                "changes", f"must be an object of field -> [old, new], got {type(value).__name__}"
            )
            # Shaped like any change, so the consumer's strict check accepts the repair.
            value = {"value": [None, value]}
        shaped: dict[str, Any] = {}
        for key, given in value.items():
            pair = given
            if key == _TRUNCATED_KEY and isinstance(given, str):
                pair = given  # the start of changes cut to their limit, kept as it was cut
            elif not isinstance(pair, (list, tuple)) or len(pair) != 2:
                self.problem(f"changes.{key}", "must be a pair [old, new]")
                pair = [None, given]
            shaped[str(key)] = pair if isinstance(pair, str) else list(pair)
        return self.json_object("changes", shaped)

    def json_object(self, field: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(field, f"must be an object, got {type(value).__name__}")
            value = {"value": value}
        safe = self._json_safe(field, value, 0)
        encoded = json.dumps(safe, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        limit = OBJECT_LIMITS[field]
        if len(encoded.encode("utf-8")) > limit:
            self.mark_truncated(field)
            return {_TRUNCATED_KEY: _start_that_fits(encoded, limit)}
        assert isinstance(safe, dict)
        return safe

    def _json_safe(  # noqa: PLR0911, PLR0912 - one flat dispatch on the value's type
        self, path: str, value: Any, depth: int
    ) -> Any:
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, str):
            return _valid_unicode(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.problem(path, f"is {value!r}, which JSON cannot hold")
            return repr(value)
        if depth > _MAX_DEPTH and isinstance(value, (Mapping, list, tuple, set, frozenset)):
            # The repair is a string, which the consumer's check accepts at any depth.
            self.problem(path, f"nests deeper than {_MAX_DEPTH} levels")
            return _short_repr(value)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for raw_key, item in value.items():
                key = raw_key
                if not isinstance(key, str):
                    if isinstance(key, (int, float, bool)) or key is None:
                        key = json.dumps(key)
                    else:
                        key = _short_repr(raw_key)
                        self.problem(f"{path}.{key}", "has a key that is not a string")
                out[_valid_unicode(key)] = self._json_safe(f"{path}.{key}", item, depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            return [
                self._json_safe(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)
            ]
        if isinstance(value, (set, frozenset)):
            items = [self._json_safe(f"{path}[]", item, depth + 1) for item in value]
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, (dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, (uuid.UUID, decimal.Decimal)):
            return str(value)
        self.problem(
            path, f"has a value of type {type(value).__name__}, which is not JSON-serialisable"
        )
        return f"<unserialisable {type(value).__name__}> {_short_repr(value, 200)}"

    def previous_truncations(self, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, list) or not all(
            isinstance(name, str) and name in INPUT_FIELDS for name in value
        ):
            self.problem("truncated", f"must be a list of field names, got {_short_repr(value)}")
            return
        for name in value:
            self.mark_truncated(name)


def _start_that_fits(encoded: str, limit: int) -> str:
    """The longest start of JSON text whose ``{"_truncated_json": ...}`` form fits ``limit``.

    Measured in its own encoding, where quotes gain escapes: the consumer encodes the marker
    again and must find it within the limit, or it would cut it a second time.
    """
    room = limit - 64
    while True:
        cut = encoded.encode("utf-8")[:room].decode("utf-8", "ignore")
        size = len(
            json.dumps({_TRUNCATED_KEY: cut}, ensure_ascii=False, separators=(",", ":")).encode()
        )
        if size <= limit:
            return cut
        room -= size - limit


def _valid_unicode(value: str) -> str:
    """The string with lone surrogates (which UTF-8 cannot hold) replaced by U+FFFD."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - an app object's __repr__ (or its depth) may fail
        text = f"<{type(value).__name__}, repr failed: {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
