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


class FilterError(AuditLoggingError, ValueError):
    """A search filter (an API query parameter, an export option) has a bad value; the
    message names the parameter and says why, and never holds a secret value."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"Parameter '{shown(name)}' {reason}")
        self.name = name
        self.reason = reason


class MissingExtraError(AuditLoggingError, ImportError):
    """A feature needs an optional dependency group that is not installed."""

    def __init__(self, extra: str, package: str) -> None:
        super().__init__(
            f"This feature needs the '{package}' package: "
            f"pip install 'audit-logging-pipeline[{extra}]'"
        )
        self.extra = extra
        self.package = package


def shown(value: str, limit: int = 60) -> str:
    """A caller-supplied value as it may appear in an error message: bounded, escaped."""
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    # repr-style escaping keeps control characters and quotes from shaping the message.
    return text.encode("unicode_escape").decode("ascii").replace("'", "\\'")


def describe_error(exc: BaseException, limit: int = 300, prefix: str = "") -> str:
    """One line saying what went wrong in a call to RabbitMQ, OpenSearch or S3, for a log line
    or a retry message: the service's own status and code where it gives them, else the
    exception's class and text. Bounded, and free of line breaks so it cannot forge log lines.

    Duck-typed so that the capture side imports neither boto3 nor opensearch-py: their errors
    never carry credentials in these attributes, only statuses, codes and reasons."""
    response = _attribute(exc, "response")
    status_code = _attribute(exc, "status_code")
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        # botocore's ClientError: S3's HTTP status and error code.
        error = response["Error"]
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        text = f"HTTP {status} {error.get('Code', '?')}: {error.get('Message', '')}".strip()
    elif isinstance(status_code, int):
        # opensearch-py's TransportError: the cluster's status, error type and reason.
        cause = _reason(_attribute(exc, "error"), _attribute(exc, "info"))
        text = f"HTTP {status_code} {cause}"
    else:
        detail = str(exc).strip()
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    text = prefix + " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _attribute(exc: BaseException, name: str) -> object:
    # opensearch-py's properties read self.args[i] and raise IndexError when it is shorter.
    try:
        return getattr(exc, name, None)
    except Exception:  # noqa: BLE001 - a describer must never raise
        return None


def _reason(error: object, info: object) -> str:
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        cause = info["error"]
        return f"{cause.get('type', error)}: {cause.get('reason', '')}"
    return str(error)
