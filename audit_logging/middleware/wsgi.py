"""``AuditWSGIMiddleware``: plain WSGI middleware that binds the request context.

The context stays bound while the response iterable is consumed and is released in its
``close()``, so records logged while streaming a response still carry the request; the
per-request record is logged there too, after the response is done (as sentry-python's
WSGI integration does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from types import TracebackType
from typing import Any

from audit_logging.context import RequestContext, _current
from audit_logging.middleware._forwarded import port_number
from audit_logging.middleware._request import (
    ContextBuilder,
    RequestAudit,
    RequestFacts,
    emit_request_record,
)
from audit_logging.settings import Settings

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
UserGetter = Callable[[Environ], "tuple[str | None, str | None] | None"]
SessionGetter = Callable[[Environ], "str | None"]


def remote_user(environ: Environ) -> tuple[str | None, str | None] | None:
    """The user the server authenticated (``REMOTE_USER``), if any."""
    name = environ.get("REMOTE_USER")
    return (None, str(name)) if name else None


class AuditWSGIMiddleware:
    """Binds IP address, user agent, session, user and request id for each request; see
    :class:`audit_logging.middleware.AuditMiddleware` for the options."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        settings: Settings | None = None,
        trusted_proxies: Iterable[str] = (),
        session_cookie: str | None = "session",
        get_session: SessionGetter | None = None,
        get_user: UserGetter | None = remote_user,
        audit_requests: RequestAudit | None = None,
        forwarded_header: str | None = None,
    ) -> None:
        self.app = app
        self.builder = ContextBuilder(
            settings, trusted_proxies, session_cookie, get_session is not None, forwarded_header
        )
        self.get_session = get_session
        self.get_user = get_user
        self.audit_requests = audit_requests

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        facts = RequestFacts(
            peer=environ.get("REMOTE_ADDR"),
            headers=_headers(environ),
            method=environ.get("REQUEST_METHOD", "GET"),
            path=environ.get("PATH_INFO", ""),
            peer_port=port_number(environ.get("REMOTE_PORT")),
        )
        get_user = self.get_user
        resolver = (lambda: get_user(environ)) if get_user is not None else None
        raw_session = self.get_session(environ) if self.get_session is not None else None
        context = self.builder.build(facts, raw_session, resolver)
        response = _Response(self, facts, context)

        def start_with_request_id(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            response.status = _status_code(status)
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", context.request_id or ""))
            return start_response(status, headers, exc_info)

        try:
            response.result = self.app(environ, start_with_request_id)
        except BaseException:
            response.close()
            raise
        return response


class _Response:
    """Wraps the app's response iterable: the context is released, and the request
    audited, when the server closes it."""

    def __init__(
        self, owner: AuditWSGIMiddleware, facts: RequestFacts, context: RequestContext
    ) -> None:
        self.owner = owner
        self.facts = facts
        self.status = 500
        self.result: Iterable[bytes] = ()
        self._closed = False
        self._token: Token[RequestContext | None] | None = _current.set(context)
        self._context = context

    def __iter__(self) -> Iterator[bytes]:
        # Servers may iterate in another context than the call's: bind it there too.
        token = _current.set(self._context) if _current.get() is not self._context else None
        try:
            yield from self.result
        except BaseException:
            self.status = 500
            raise
        finally:
            if token is not None:
                _current.reset(token)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            rule = self.owner.audit_requests
            if rule is not None and rule.matches(self.facts.method, self.facts.path):
                emit_request_record(rule, self.facts, self.status)
            token, self._token = self._token, None
            if token is not None:
                # (ValueError: closed in another context than the call's)
                with contextlib.suppress(ValueError):
                    _current.reset(token)


def _headers(environ: Environ) -> dict[str, str]:
    return {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }


def _status_code(status: str) -> int:
    code = status.split(" ", 1)[0]
    return int(code) if code.isdigit() else 500
