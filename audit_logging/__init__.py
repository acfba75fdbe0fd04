"""audit_logging: who did what to which object, from where, and when."""

from __future__ import annotations

from audit_logging.capture import configure, flush, log_audit_event, shutdown
from audit_logging.context import bind_user
from audit_logging.errors import (
    AuditLoggingError,
    ConfigurationError,
    MissingExtraError,
    RecordError,
)
from audit_logging.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AuditLoggingError",
    "ConfigurationError",
    "MissingExtraError",
    "RecordError",
    "Settings",
    "__version__",
    "bind_user",
    "configure",
    "flush",
    "log_audit_event",
    "shutdown",
]
