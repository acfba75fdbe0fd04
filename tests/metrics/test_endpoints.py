"""The endpoint server on a real socket: routes, methods, errors and its bound on
concurrent connections."""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from audit_logging.metrics import endpoints
from audit_logging.metrics.endpoints import EndpointServer, Response


def _fail() -> Response:
    raise RuntimeError("a bug in a route")


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("demo_things", "Things counted.", registry=registry).inc(3)
    return registry


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[tuple[EndpointServer, list[str]]]:
    calls: list[str] = []
    routes = {
        "/metrics": endpoints.metrics_route(registry, before=lambda: calls.append("before")),
        "/healthz": endpoints.alive,
        "/boom": _fail,
    }
    running = EndpointServer("127.0.0.1", 0, routes).start()
    yield running, calls
    running.close()


def request(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_healthz_says_alive(server: tuple[EndpointServer, list[str]]) -> None:
    status, headers, body = request(server[0].port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "alive"})
    assert headers["Content-Type"] == "application/json"


def test_metrics_is_the_text_exposition_after_the_before_hook(
    server: tuple[EndpointServer, list[str]],
) -> None:
    running, calls = server
    status, headers, body = request(running.port, "/metrics?name[]=ignored")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"demo_things_total 3.0" in body
    assert calls == ["before"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"])
def test_only_get_is_served(server: tuple[EndpointServer, list[str]], method: str) -> None:
    status, headers, body = request(server[0].port, "/metrics", method)
    assert status == 405
    assert headers["Allow"] == "GET"
    assert b"demo_things" not in body
    status, _, _ = request(server[0].port, "/elsewhere", method)
    assert status == 404


def test_unknown_path_is_404(server: tuple[EndpointServer, list[str]]) -> None:
    for path in ("/", "/metrics/", "/readyz", "/../etc/passwd", "/healthz/x"):
        assert request(server[0].port, path)[0] == 404, path


def test_a_failing_route_is_a_500_and_the_server_keeps_serving(
    server: tuple[EndpointServer, list[str]],
) -> None:
    status, _, body = request(server[0].port, "/boom")
    assert (status, json.loads(body)) == (500, {"error": "internal error"})
    assert b"a bug" not in body
    assert request(server[0].port, "/healthz")[0] == 200


def test_a_taken_port_raises_oserror(server: tuple[EndpointServer, list[str]]) -> None:
    with pytest.raises(OSError, match="in use"):
        EndpointServer("127.0.0.1", server[0].port, {})


def test_idle_connections_beyond_the_bound_are_closed_unanswered(
    server: tuple[EndpointServer, list[str]],
) -> None:
    port = server[0].port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(endpoints.MAX_CONCURRENT)]
    try:
        # Each idle connection holds a slot (it may still send its request): one more is
        # closed at once, without an answer.
        deadline = time.monotonic() + 10
        while True:
            extra = socket.create_connection(("127.0.0.1", port), timeout=5)
            extra.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            answer = extra.recv(100)
            extra.close()
            if answer == b"" or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the idle ones were not all accepted yet
        assert answer == b""
    finally:
        for sock in idle:
            sock.close()
    # Their slots come back as soon as they are gone.
    deadline = time.monotonic() + 10
    while True:
        try:
            if request(port, "/healthz")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "the slots never came back"
        time.sleep(0.1)


def test_a_request_trickled_in_is_cut_off_at_its_deadline(
    server: tuple[EndpointServer, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends a byte now and then, each within the read timeout, must not hold
    a slot for ever: MAX_CONCURRENT of them would keep /healthz and /readyz from answering
    (and a liveness probe would restart the process)."""
    monkeypatch.setattr(endpoints._Handler, "timeout", 0.5)
    monkeypatch.setattr(endpoints, "REQUEST_DEADLINE", 1.0)
    trickler = socket.create_connection(("127.0.0.1", server[0].port), timeout=5)
    closed = False
    try:
        trickler.sendall(b"GET /healthz HTTP/1.0\r\nX-Slow: ")
        for _ in range(40):  # 40 bytes, 0.25 s apart: 10 s, ten times the deadline
            ready, _, _ = select.select([trickler], [], [], 0.25)
            if ready:
                try:
                    closed = trickler.recv(100) == b""
                except ConnectionError:
                    closed = True
                if closed:
                    break
            try:
                trickler.sendall(b"a")
            except ConnectionError:
                closed = True
                break
    finally:
        trickler.close()
    assert closed, "a request sent a byte at a time kept its connection past the deadline"
    assert request(server[0].port, "/healthz")[0] == 200


def test_a_client_gone_before_its_answer_prints_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A scraper or probe that gives up (its timeout) leaves a broken pipe behind: that is
    routine, and must not write a traceback to the process's stderr for each one."""
    hang_up = threading.Event()
    answered = threading.Event()
    answering: list[threading.Thread] = []

    def slow() -> Response:
        answering.append(threading.current_thread())
        hang_up.wait(10)
        return endpoints.json_response(200, {"status": "late"})

    def after_the_answer() -> Response:
        answered.set()
        return endpoints.alive()

    running = EndpointServer("127.0.0.1", 0, {"/slow": slow, "/healthz": after_the_answer})
    running.start()
    try:
        client = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        # Closed with a reset, as a client's timeout may: the answer's write then fails.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sendall(b"GET /slow HTTP/1.0\r\n\r\n")
        time.sleep(0.2)  # the request is read and the route is waiting
        client.close()
        hang_up.set()
        answering[0].join(10)  # its write has failed, and the failure has been handled
        assert not answering[0].is_alive()
        assert request(running.port, "/healthz")[0] == 200  # and the server is still whole
    finally:
        running.close()
    assert answered.is_set()
    assert "Traceback" not in capfd.readouterr().err
