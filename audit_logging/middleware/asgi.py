"""``AuditMiddleware``: pure ASGI middleware that binds the request context.

Not ``BaseHTTPMiddleware``: that runs the app in another task, so contextvars set around
it do not reach the app (see Starlette's docs/middleware.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from audit_logging.capture import audit_handlers, flush
from audit_logging.context import _current
from audit_logging.errors import ConfigurationError
from audit_logging.middleware._request import (
    ContextBuilder,
    RequestAudit,
    RequestFacts,
    emit_request_record,
)
from audit_logging.settings import Settings

library_logger = logging.getLogger("audit_logging")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UserGetter = Callable[[Scope], "tuple[str | None, str | None] | None"]
SessionGetter = Callable[[Scope], "str | None"]


def starlette_user(scope: Scope) -> tuple[str | None, str | None] | None:
    """The user Starlette's AuthenticationMiddleware put in the scope, if authenticated."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    identity = getattr(user, "identity", None)
    name = getattr(user, "display_name", None)
    return (
        None if identity in (None, "") else str(identity),
        None if name in (None, "") else str(name),
    )


class AuditMiddleware:
    """Binds IP address, user agent, session, user and request id for each HTTP request,
    echoes the request id in an ``X-Request-ID`` response header, and optionally logs one
    audit record per request (``audit_requests``).

    ``forwarded_header`` (default ``AUDIT_LOG_FORWARDED_HEADER``) names the one header the
    trusted proxies write. ``drain_at_shutdown`` bounds, in seconds, how long the end of the
    app's lifespan waits for the audit handlers to be confirmed (0: no wait)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings | None = None,
        trusted_proxies: Iterable[str] = (),
        session_cookie: str | None = "session",
        get_session: SessionGetter | None = None,
        get_user: UserGetter | None = starlette_user,
        audit_requests: RequestAudit | None = None,
        forwarded_header: str | None = None,
        drain_at_shutdown: float = 5.0,
    ) -> None:
        self.app = app
        self.builder = ContextBuilder(
            settings, trusted_proxies, session_cookie, get_session is not None, forwarded_header
        )
        if not 0 <= drain_at_shutdown < float("inf"):
            raise ConfigurationError(
                "drain_at_shutdown", f"must be 0 or more seconds, got {drain_at_shutdown!r}"
            )
        self.drain_at_shutdown = drain_at_shutdown
        self.get_session = get_session
        self.get_user = get_user
        self.audit_requests = audit_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.drain_at_shutdown > 0:
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or (None, None)
        facts = RequestFacts(
            peer=client[0],
            headers=_headers(scope),
            method=scope.get("method", "GET"),
            path=scope.get("path", ""),
            peer_port=client[1] if isinstance(client[1], int) else None,
        )
        get_user = self.get_user
        resolver = (lambda: get_user(scope)) if get_user is not None else None
        raw_session = self.get_session(scope) if self.get_session is not None else None
        context = self.builder.build(facts, raw_session, resolver)
        status = 500
        request_id = (context.request_id or "").encode("latin-1")

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id))
                message["headers"] = headers
            await send(message)

        token = _current.set(context)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            # In finally, so failed requests are audited too (status stays 500).
            if self.audit_requests is not None and self.audit_requests.matches(
                facts.method, facts.path
            ):
                emit_request_record(self.audit_requests, facts, status)
            _current.reset(token)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = False

        async def watched_receive() -> Message:
            nonlocal received
            received = True
            return await receive()

        try:
            await self.app(scope, watched_receive, self._draining_send(send))
            return
        except Exception:
            if received:
                raise
            # ASGI: raising before the first message means "no lifespan support" (a bare
            # app's ``assert scope["type"] == "http"``).
            library_logger.debug("The app does not support the lifespan protocol", exc_info=True)
        # Answer for the app, or the drain never runs and a uvicorn worker ends with its
        # records in memory.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._draining_send(send)({"type": "lifespan.shutdown.complete"})
                return

    def _draining_send(self, send: Send) -> Send:
        """``send`` that drains the audit handlers once the app's shutdown is done (its
        shutdown handlers may still log) and before the server is told so: under
        ``uvicorn --workers`` a worker process ends right after, without running atexit."""

        async def send_after_draining(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await drain(self.drain_at_shutdown)
            await send(message)

        return send_after_draining


async def drain(timeout: float) -> int:
    """Flush every audit handler within ``timeout`` s, off the event loop; return how many
    records are still unconfirmed (reported on the library's logger). Those are put in the
    spool, fsynced, before this returns."""
    try:
        left = await asyncio.to_thread(flush, timeout)
        if left:
            # The process may end right after without running exit hooks (a uvicorn worker
            # re-raises SIGTERM once it has served): what the publishers hold in memory
            # must reach the spool now. A record logged later starts them again.
            await asyncio.to_thread(_spool_unconfirmed)
    except Exception:  # a failed drain must not fail the server's shutdown
        library_logger.exception("Draining the audit handlers at shutdown failed")
        return 0
    if left:
        library_logger.warning(
            "%d audit records were not confirmed within %.1f s of the app's shutdown",
            left,
            timeout,
        )
    return left


def _spool_unconfirmed() -> None:
    # The transport's close, not the handler's: the handler stays attached and registered.
    for handler in audit_handlers():
        handler.transport.close(0.0)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            # HTTP/2 splits Cookie into several fields; they join with "; " (RFC 9113).
            value = f"{headers[name]}{'; ' if name == 'cookie' else ', '}{value}"
        headers[name] = value
    return headers
