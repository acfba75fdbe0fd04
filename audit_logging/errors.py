"""The one error hierarchy of audit_logging: catch ``AuditLoggingError`` to catch them all."""

from __future__ import annotations


class AuditLoggingError(Exception):
    """Root of every error this library raises on purpose."""


class ConfigurationError(AuditLoggingError, ValueError):
    """A setting is missing or has a bad value; the message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"Setting {setting}: {message}")
        self.setting = setting


class RecordError(AuditLoggingError, ValueError):
    """An audit record field is missing or has a bad value; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"Audit record field '{field}': {message}")
        self.field = field


class MissingExtraError(AuditLoggingError, ImportError):
    """A feature needs an optional dependency group that is not installed."""

    def __init__(self, extra: str, package: str) -> None:
        super().__init__(
            f"This feature needs the '{package}' package: "
            f"pip install 'audit-logging-pipeline[{extra}]'"
        )
        self.extra = extra
        self.package = package
