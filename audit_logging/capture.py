"""The capture entry points: ``configure``, ``log_audit_event``, ``flush``, ``shutdown``."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Final

from audit_logging.context import current_context
from audit_logging.errors import RecordError
from audit_logging.handlers._snapshot import Snapshot, merge_truncated
from audit_logging.handlers.formatter import fill_from_context, finish_record
from audit_logging.handlers.handler import AuditHandler
from audit_logging.record import INPUT_FIELDS
from audit_logging.settings import Settings

AUDIT_LOGGER: Final = "audit"
_lock = threading.Lock()
_atexit_registered = False


def audit_handlers() -> list[AuditHandler]:
    """The AuditHandlers attached to the ``audit`` logger (by ``configure`` or dictConfig)."""
    return [h for h in logging.getLogger(AUDIT_LOGGER).handlers if isinstance(h, AuditHandler)]


def configure(settings: Settings | None = None, **setting_values: Any) -> AuditHandler:
    """Attach an :class:`AuditHandler` to the ``audit`` logger and return it. Its settings
    are ``settings``, or else built from ``setting_values`` (then the environment, then
    ``.env``). Idempotent: the same settings return the handler already attached; new
    settings replace it (the old one is drained)."""
    global _atexit_registered  # noqa: PLW0603 - one exit hook per process
    if settings is not None and setting_values:
        raise TypeError("give either settings= or setting keyword arguments, not both")
    wanted = settings if settings is not None else Settings.load(**setting_values)
    audit = logging.getLogger(AUDIT_LOGGER)
    with _lock:
        for handler in audit_handlers():
            if handler.settings == wanted:
                return handler
            audit.removeHandler(handler)
            handler.close()
        handler = AuditHandler(settings=wanted)
        audit.addHandler(handler)
        if audit.level == logging.NOTSET or audit.level > logging.INFO:
            # Audit calls use .info(); the root's default WARNING would drop them.
            audit.setLevel(logging.INFO)
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return handler


def log_audit_event(**fields: Any) -> str:
    """Record one audit event and return its ``log_id``.

    Keyword names are the record fields (``action``, ``user_id``, ``object_type``, ...);
    the request context fills what is left out. A missing ``action``, an unknown field or
    a value of the wrong type raises :class:`RecordError` here, in the caller.
    """
    unknown = sorted(name for name in fields if name not in INPUT_FIELDS)
    if unknown:
        raise RecordError(", ".join(unknown), "is not a record field; put it in 'extra'")
    # Checked as the handler's snapshot checks extra= (depth, size of integers, mappings
    # that fail to read), but raising: the caller learns which value is wrong.
    snapshot = Snapshot(strict=True)
    given = {name: snapshot.field(name, value) for name, value in fields.items()}
    if snapshot.truncated:
        given["truncated"] = merge_truncated(given.get("truncated"), snapshot.truncated)
    context = current_context()
    if context is not None:
        fill_from_context(given, context.fields())
    handlers = audit_handlers() or [configure()]
    record = finish_record(given, handlers[0].settings, None)
    for handler in handlers:
        handler.submit_record(record)
    return str(record["log_id"])


def flush(timeout: float = 5.0) -> int:
    """Wait up to ``timeout`` s until the broker confirmed every record; return how many
    are still unconfirmed (kept in the spool if the broker is unreachable)."""
    return sum(handler.flush(timeout) for handler in audit_handlers())


def shutdown(timeout: float = 5.0) -> int:
    """Drain and stop every audit handler (also run at exit); return how many records
    were not delivered. Records not delivered stay in the spool for the next process."""
    audit = logging.getLogger(AUDIT_LOGGER)
    left = 0
    for handler in audit_handlers():
        left += handler.close(timeout)
        audit.removeHandler(handler)
    return left
