"""Log records handed straight to a handler, as the ``audit`` logger would make them."""

from __future__ import annotations

import logging

from audit_logging.handlers import AuditHandler


def audit_record(object_id: str) -> logging.LogRecord:
    """The ``audit`` logger's record of a CREATE of ``object_id``."""
    record = logging.LogRecord("audit", logging.INFO, __file__, 1, "m", None, None)
    record.action = "CREATE"
    record.object_id = object_id
    return record


def emit_records(handler: AuditHandler, first: int, count: int) -> None:
    """Emit ``count`` records, their object_ids numbered from ``first``."""
    for i in range(first, first + count):
        handler.emit(audit_record(str(i)))
