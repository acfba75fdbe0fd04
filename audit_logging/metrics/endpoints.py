"""A small HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``, in its own thread.

The process's real work (an asyncio loop, a request handler) never waits on it: each route
is a function that reads what the process already keeps and returns at once. Only GET is
served; another method on a route is 405, an unknown path 404. Connections are HTTP/1.0 (one
request each), reads time out, a request must arrive whole within ``REQUEST_DEADLINE`` (a
byte now and then does not keep a connection open), and at most ``MAX_CONCURRENT`` requests
are answered at once (more are closed unanswered), so a misbehaving scraper costs the
process little.
Nothing here reads a secret: what a route returns is what its function gives.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import AF_INET6, socket
from typing import Any, Final

from audit_logging.metrics._prometheus import require_prometheus

MAX_CONCURRENT: Final = 16
READ_TIMEOUT: Final = 5.0
REQUEST_DEADLINE: Final = 10.0
_log = logging.getLogger("audit_logging.metrics")


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes


Route = Callable[[], Response]


def json_response(status: int, document: Mapping[str, Any]) -> Response:
    return Response(status, "application/json", json.dumps(document).encode() + b"\n")


def alive() -> Response:
    """``/healthz``: the process answers (it says nothing about its dependencies)."""
    return json_response(200, {"status": "alive"})


def metrics_route(registry: Any, before: Callable[[], None] | None = None) -> Route:
    """``/metrics``: ``registry`` in the Prometheus text format; ``before`` runs first (to
    bring gauges and counters up to date from what the process counts by itself)."""
    client = require_prometheus()
    # The classic text format every Prometheus reads (prometheus-client 0.22+ calls its
    # output 1.0.0 by default, which a Prometheus 2 server does not know).
    exposition = importlib.import_module("prometheus_client.exposition")
    content_type = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", client.CONTENT_TYPE_LATEST)

    def route() -> Response:
        if before is not None:
            before()
        return Response(200, content_type, client.generate_latest(registry))

    return route


class _DeadlineReader(io.RawIOBase):
    """The connection's reads, each bounded by the read timeout and all of them by one
    deadline: the socket timeout alone restarts with every byte received."""

    def __init__(self, connection: socket, per_read: float | None, deadline: float) -> None:
        self._connection = connection
        self._per_read = per_read
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive within its deadline")
        self._connection.settimeout(left if self._per_read is None else min(self._per_read, left))
        try:
            return self._connection.recv_into(buffer)
        finally:
            self._connection.settimeout(self._per_read)  # the answer's writes


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT
    server_version = "audit-logging"
    sys_version = ""
    # Until a request line parses, http.server takes the client for HTTP/0.9 and answers a
    # bare body without a status line (to a TLS ClientHello, for one): answer as HTTP/1.0.
    default_request_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        # http.server catches a TimeoutError from a read: the connection is closed unanswered.
        self.rfile.close()  # the socket's own file: it would keep the socket from closing
        deadline = time.monotonic() + REQUEST_DEADLINE
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self.timeout, deadline))

    def do_GET(self) -> None:
        route = self.server.routes.get(self._path())
        if route is None:
            self._send(json_response(404, {"error": "not found"}))
            return
        try:
            response = route()
        except Exception:  # noqa: BLE001 - a route's bug is a 500, never a dead server
            _log.exception("the %s endpoint failed", self._path())
            response = json_response(500, {"error": "internal error"})
        self._send(response)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own error page is HTML quoting the request line (escaped, up to
        # 64 KiB); the routes answer JSON, and a fixed line per status echoes nothing.
        self.close_connection = True
        self._send(json_response(code, {"error": HTTPStatus(code).phrase.lower()}))

    def _not_get(self) -> None:
        if self._path() in self.server.routes:
            self._send(json_response(405, {"error": "method not allowed"}), allow="GET")
        else:
            self._send(json_response(404, {"error": "not found"}))

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>: every method but GET gets 405 or 404, not 501.
        if name.startswith("do_"):
            return self._not_get
        raise AttributeError(name)

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _send(self, response: Response, allow: str | None = None) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        if allow is not None:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # A scrape every few seconds is no news; the base class would print each to stderr.
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        if ":" in address[0]:
            self.address_family = AF_INET6
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that hung up or timed out (a
        # scraper's or a probe's own timeout) is routine, and anyone could cause one per
        # connection.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        _log.warning("the endpoint server failed on a request", exc_info=True)


class EndpointServer:
    """Serves ``routes`` (path -> function) on ``host``:``port`` from a daemon thread."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route]) -> None:
        """Binds at once: an ``OSError`` (the port is taken, the address is not ours) is
        the caller's to report, naming its setting."""
        self._server = _Server((host, port), routes)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="audit-logging-endpoints",
            daemon=True,
        )

    @property
    def port(self) -> int:
        sock: socket = self._server.socket
        return int(sock.getsockname()[1])

    def start(self) -> EndpointServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
