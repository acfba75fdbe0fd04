"""The API's errors and their one JSON shape: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from starlette.responses import JSONResponse, Response

from audit_logging.errors import AuditLoggingError, shown

# How long a client should wait before retrying when OpenSearch is unreachable.
RETRY_AFTER_SECONDS = 5
# Audit data must not linger in shared caches or browser history; nor may errors about it.
NO_STORE: Final = {"Cache-Control": "no-store"}


class ApiError(AuditLoggingError):
    """An error the API answers with; ``message`` is safe to show to the caller."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}

    def headers(self) -> dict[str, str]:
        return {}


class BadParameterError(ApiError):
    status = 400
    code = "bad_parameter"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"Parameter '{shown(field)}' {message}", shown(field))


class CredentialInQueryError(BadParameterError):
    code = "credential_in_query"

    def __init__(self, field: str) -> None:
        super().__init__(
            field,
            "is named like a credential: credentials in a URL end up in logs, so they are "
            "refused. Send the token in the 'Authorization: Bearer <token>' header instead "
            "(and replace a token that was sent in a URL)",
        )


class UnauthorizedError(ApiError):
    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="audit-logs"'}


class NotFoundError(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowedError(ApiError):
    status = 405
    code = "method_not_allowed"


class UnavailableError(ApiError):
    status = 503
    code = "search_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class MetricsUnavailableError(ApiError):
    """``/metrics`` on an app that keeps no metrics (the ``metrics`` extra is missing, or
    they are turned off): a standing state of this server, not a passing one, hence 501."""

    status = 501
    code = "metrics_unavailable"


class InternalError(ApiError):
    status = 500
    code = "internal_error"


def error_response(exc: ApiError, headers: Mapping[str, str] | None = None) -> Response:
    """``exc`` as the API answers it."""
    merged = {**NO_STORE, **exc.headers(), **(headers or {})}
    return JSONResponse(exc.body(), status_code=exc.status, headers=merged)
