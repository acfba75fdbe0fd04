"""The query API: search and detail over OpenSearch (``pip install 'audit-logging-pipeline[api]'``).

``create_app(settings)`` builds the Starlette app; ``python -m audit_logging.api`` serves it.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401 - opensearch-py's asyncio transport
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by installs without the extra
    from audit_logging.errors import MissingExtraError

    package = "opensearch-py[async]" if exc.name == "aiohttp" else (exc.name or "starlette")
    raise MissingExtraError("api", package) from None

from audit_logging.api.app import create_app
from audit_logging.api.auth import Authenticator, BearerTokenAuthenticator, Caller
from audit_logging.api.errors import ApiError, BadParameterError, NotFoundError, UnauthorizedError

__all__ = [
    "ApiError",
    "Authenticator",
    "BadParameterError",
    "BearerTokenAuthenticator",
    "Caller",
    "NotFoundError",
    "UnauthorizedError",
    "create_app",
]
