"""How the API answers a failure: the exception handlers its Starlette app registers.

Every answer has the one JSON error shape and never a stack trace; the details of what went
wrong go to the server's log (logger ``audit_logging.api``), with the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from audit_logging.api import errors
from audit_logging.errors import shown

logger = logging.getLogger("audit_logging.api")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ApiError)
    return errors.error_response(exc)


async def _opensearch_unreachable(request: Request, exc: Exception) -> Response:
    logger.warning("OpenSearch is unreachable: %s", type(exc).__name__)
    return errors.error_response(errors.UnavailableError("The search service is unreachable"))


async def _opensearch_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TransportError)
    if exc.status_code in (429, 503):
        logger.warning("OpenSearch is overloaded or unavailable (%s)", exc.status_code)
        return errors.error_response(errors.UnavailableError("The search service is unavailable"))
    logger.error("OpenSearch refused a request of %s", request.url.path, exc_info=exc)
    return errors.error_response(errors.InternalError("Internal error"))


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Starlette's own errors (404 unknown route, 405 other method) in our JSON shape.
    assert isinstance(exc, HTTPException)
    error: errors.ApiError
    if exc.status_code == 404:
        path = request.url.path
        hint = "" if path.endswith("/") else f" (did you mean {shown(path + '/')}?)"
        error = errors.NotFoundError(f"No route {shown(path)}{hint}")
    elif exc.status_code == 405:
        error = errors.MethodNotAllowedError(
            f"Method {shown(request.method)} is not allowed"
        )
    else:
        error = errors.ApiError(shown(str(exc.detail)))
        return JSONResponse(
            error.body(),
            status_code=exc.status_code,
            headers={**errors.NO_STORE, **(exc.headers or {})},
        )
    return errors.error_response(error, exc.headers)


# Looked up by the exception's class, most specific first (a ConnectionError is also a
# TransportError).
EXCEPTION_HANDLERS: Final[Mapping[Any, ExceptionHandler]] = {
    HTTPException: _http_exception,
    errors.ApiError: _api_error,
    OpenSearchConnectionError: _opensearch_unreachable,
    TransportError: _opensearch_refused,
}
_HANDLED: Final = tuple(EXCEPTION_HANDLERS)

Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(endpoint: Endpoint) -> Endpoint:
    """``endpoint``, with an exception that no handler above takes logged and answered as a
    bare 500 (by raising :class:`errors.InternalError` in its place).

    Not a handler keyed on ``Exception``: Starlette gives that one to its
    ServerErrorMiddleware, which answers and then raises the exception again, so the server
    would log it a second time (and a TestClient raise it)."""

    async def endpoint_or_500(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _HANDLED:
            raise
        except Exception as exc:
            logger.error("Unexpected error serving %s", request.url.path, exc_info=exc)
            raise errors.InternalError("Internal error") from None

    return endpoint_or_500
