"""Small ASGI and WSGI apps that log audit records, for the middleware tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

audit = logging.getLogger("audit")


class IdentifiedUser(SimpleUser):
    def __init__(self, user_id: str, username: str) -> None:
        super().__init__(username)
        self._id = user_id

    @property
    def identity(self) -> str:
        return self._id


class IdentifyingAuth(AuthenticationBackend):
    async def authenticate(
        self, conn: HTTPConnection
    ) -> tuple[AuthCredentials, SimpleUser] | None:
        header = conn.headers.get("x-user")
        if not header:
            return None
        user_id, _, name = header.partition(":")
        return AuthCredentials(["authenticated"]), IdentifiedUser(user_id, name)


async def update_customer(request: Request) -> JSONResponse:
    await asyncio.sleep(0)
    audit.info("Updated customer", extra={"action": "UPDATE", "object_type": "Customer",
                                         "object_id": request.path_params["cid"]})
    return JSONResponse({"ok": True})


async def fail(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


def starlette_app(**middleware_options: Any) -> Starlette:
    from audit_logging.middleware import AuditMiddleware

    return Starlette(
        routes=[
            Route("/customers/{cid}", update_customer, methods=["GET", "POST"]),
            Route("/fail", fail, methods=["POST"]),
        ],
        middleware=[
            Middleware(AuditMiddleware, **middleware_options),
            Middleware(AuthenticationMiddleware, backend=IdentifyingAuth()),
        ],
    )


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/fail":
        raise RuntimeError("boom")
    audit.info("Viewed report", extra={"action": "VIEW", "object_type": "Report",
                                      "object_id": path.rsplit("/", 1)[-1]})
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterator[bytes]:
        yield b"part one\n"
        # Logged while the response streams: the request context must still be there.
        audit.info("Streamed report", extra={"action": "EXPORT", "object_type": "Report"})
        yield b"part two\n"

    return body()
