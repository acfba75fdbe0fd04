"""The logging side of capture: the handler and its JSON formatting."""

from audit_logging.handlers.formatter import AuditJsonFormatter
from audit_logging.handlers.handler import IGNORED_LOGGERS, AuditHandler

__all__ = ["IGNORED_LOGGERS", "AuditHandler", "AuditJsonFormatter"]
