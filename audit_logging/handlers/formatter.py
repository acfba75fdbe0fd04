"""Turns a ``logging.LogRecord`` into one audit record as JSON, on python-json-logger.

The message becomes ``change_message``, record fields come from ``extra=``, any other
``extra=`` key goes into the record's ``extra`` object, and the request context fills what
the call left out. Problems are repaired and reported (an app's log call must not fail);
only a record without ``action`` is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonFormatter

from audit_logging.errors import RecordError, describe_error
from audit_logging.record import INPUT_FIELDS, build_record
from audit_logging.session_key import stored_session_key
from audit_logging.settings import Settings

# The attribute carrying the request context on the LogRecord the publisher rebuilds.
CONTEXT_ATTR: Final = "audit_context"

_NOT_EXTRA: Final = frozenset(RESERVED_ATTRS) | INPUT_FIELDS | {CONTEXT_ATTR}
_dumps: Final = partial(json.dumps, separators=(",", ":"), allow_nan=False)


class AuditJsonFormatter(JsonFormatter):
    """A python-json-logger formatter whose output is a schema-v1 audit record."""

    def __init__(self, settings: Settings, report: Callable[[str], None]) -> None:
        super().__init__(json_serializer=_dumps, json_ensure_ascii=False)
        self._settings = settings
        self._report = report

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        values = record.__dict__
        for name in INPUT_FIELDS:
            if name in values:
                log_data[name] = values[name]
        context = values.get(CONTEXT_ATTR)
        if context:
            fill_from_context(log_data, context)
        log_data.setdefault("change_message", record.getMessage())
        log_data.setdefault("timestamp", record.created)  # build_record formats it
        # Other extra= keys, a traceback, a stack: kept in the record's "extra" object.
        other: dict[str, Any] = {}
        merge_record_extra(record, other, reserved=_NOT_EXTRA)
        other.update(message_dict)
        if other:
            log_data["extra"] = merge_extra(other, log_data.get("extra"))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return finish_record(log_data, self._settings, self._report)

    def serialize_record(self, record: dict[str, Any]) -> bytes:
        """The JSON of a record already built (by ``log_audit_event``)."""
        return self.jsonify_log_record(record).encode("utf-8")


def fill_from_context(fields: dict[str, Any], context: Mapping[str, Any]) -> None:
    """Fill what the caller left out from the request context (the caller wins)."""
    for name, value in context.items():
        if name == "extra":
            fields["extra"] = merge_extra(value, fields.get("extra"))
        elif name != "truncated":
            fields.setdefault(name, value)
    # The context's cuts (a long user agent) still hold where its value was used, whatever
    # the call cut itself.
    cut_in_context = [
        field for field in context.get("truncated") or () if fields.get(field) is context.get(field)
    ]
    if cut_in_context:
        given = fields.get("truncated")
        if given is None:
            fields["truncated"] = cut_in_context
        elif isinstance(given, list):
            fields["truncated"] = given + [field for field in cut_in_context if field not in given]


def merge_extra(base: Mapping[str, Any], given: Any) -> Any:
    """``given`` (the caller's extra) over ``base``; a non-object ``given`` is kept as is
    under the key "extra", so the record's check still sees and reports it."""
    if given is None:
        return dict(base)
    if isinstance(given, Mapping):
        return {**base, **given}
    return {**base, "extra": given}


def finish_record(
    fields: dict[str, Any], settings: Settings, report: Callable[[str], None] | None
) -> dict[str, Any]:
    """Apply the session key policy and build the checked record (strict without report)."""
    if fields.get("session_key") is not None:
        raw = fields["session_key"]
        stored = stored_session_key(
            raw if isinstance(raw, str) else str(raw),
            settings.session_key_mode,
            settings.hash_key,
        )
        if stored is None and settings.session_key_mode == "hash":
            reason = "AUDIT_LOG_SESSION_KEY_MODE is hash and AUDIT_LOG_HASH_KEY is not set"
            if report is None:
                raise RecordError("session_key", f"cannot be stored: {reason}")
            report(f"Audit record field 'session_key' dropped: {reason}")
        fields["session_key"] = stored
    try:
        return build_record(fields, source=settings.source, report=report)
    except RecordError:
        raise
    except (ValueError, OverflowError, RecursionError) as exc:
        # A value the checks let through that Python's own conversions refuse (a
        # timestamp of 10**400 seconds): the caller gets the one error it expects.
        raise RecordError(_culprit(fields, settings), _describe(exc)) from None


def _culprit(fields: Mapping[str, Any], settings: Settings) -> str:
    """The field whose value alone makes a record fail ("record" if none does alone)."""
    for name, value in fields.items():
        if name == "action":
            continue
        try:
            build_record({"action": "PROBE", name: value}, report=_ignore)
        except Exception:  # noqa: BLE001 - any failure names the culprit
            return str(name)
    return "record"


def _describe(exc: BaseException) -> str:
    return f"cannot be stored ({describe_error(exc, 180)})"


def _ignore(message: str) -> None:
    """A probe repairs what it can silently: only a value that still breaks it is named."""
