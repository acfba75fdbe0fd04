"""Drive one request with exact header bytes through the ASGI or the WSGI middleware.

No HTTP client in between: clients refuse or rewrite the hostile headers these tests need
(NUL, CR/LF, non-UTF-8 bytes, repeated fields), and servers hand them on as they came.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import logging
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit_logging.middleware import AuditMiddleware, AuditWSGIMiddleware
from audit_logging.settings import Settings
from audit_logging.testing import capture_audit_records

HASH_KEY = "test-hash-key-0123456789"
SETTINGS = Settings.load(environ={}, env_file=None, hash_key=HASH_KEY)
Headers = Sequence[tuple[str, str | bytes]]

audit = logging.getLogger("audit")


def expected_hash(raw: str | bytes) -> str:
    data = raw if isinstance(raw, bytes) else raw.encode()
    return "hmac-sha256:" + hmac.new(HASH_KEY.encode(), data, hashlib.sha256).hexdigest()


@dataclass
class Outcome:
    status: int
    request_id_header: str | None  # the X-Request-ID the response carried
    records: list[dict[str, Any]]

    @property
    def record(self) -> dict[str, Any]:
        (record,) = self.records
        return record


def as_bytes(value: str | bytes) -> bytes:
    """Header text as its bytes: one byte per character up to U+00FF (as HTTP reads
    them), UTF-8 otherwise."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def run_asgi(
    headers: Headers, client: str | None = "198.51.100.7", port: int = 40000, **options: Any
) -> Outcome:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        audit.info("Viewed", extra={"action": "VIEW", "object_type": "Page"})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    options.setdefault("settings", SETTINGS)
    middleware = AuditMiddleware(app, **options)
    scope = {
        "type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
        "headers": [(name.lower().encode("latin-1"), as_bytes(v)) for name, v in headers],
        "client": None if client is None else (client, port),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    with capture_audit_records(hash_key=HASH_KEY) as records:
        asyncio.run(middleware(scope, receive, send))
    start = sent[0]
    ids = [v.decode("latin-1") for k, v in start["headers"] if k.lower() == b"x-request-id"]
    return Outcome(start["status"], ids[0] if len(ids) == 1 else None, list(records))


def wsgi_environ(headers: Headers, client: str | None, port: int = 40000) -> dict[str, Any]:
    """The environ a server builds: repeated fields joined (Cookie with "; ", as HTTP/2
    servers do, others with ","), values as latin-1 text."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "test",
        "SERVER_PORT": "80", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
    }
    if client is not None:
        environ["REMOTE_ADDR"] = client
        environ["REMOTE_PORT"] = str(port)
    for name, value in headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        text = as_bytes(value).decode("latin-1")
        if key in environ:
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    return environ


def run_wsgi(
    headers: Headers, client: str | None = "198.51.100.7", port: int = 40000, **options: Any
) -> Outcome:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        audit.info("Viewed", extra={"action": "VIEW", "object_type": "Page"})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    options.setdefault("settings", SETTINGS)
    middleware = AuditWSGIMiddleware(app, **options)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    with capture_audit_records(hash_key=HASH_KEY) as records:
        body = middleware(wsgi_environ(headers, client, port), start_response)
        try:
            b"".join(body)
        finally:
            body.close()  # type: ignore[attr-defined]
    status, response_headers = started[0]
    ids = [v for k, v in response_headers if k.lower() == "x-request-id"]
    return Outcome(int(status.split()[0]), ids[0] if len(ids) == 1 else None, list(records))


RUNNERS = {"asgi": run_asgi, "wsgi": run_wsgi}
