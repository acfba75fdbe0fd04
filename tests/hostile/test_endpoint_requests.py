"""Every file in ``endpoint_requests/``: one raw request sent to the endpoint server that a
consumer's ``--metrics-port`` (``/metrics``, ``/healthz``, ``/readyz``) runs: request lines
and headers past the parser's limits, wrong versions, TLS on the plain port, NUL and CR LF in
paths, absolute URIs, bodies on a GET that never end, methods that are no identifier.

Each is answered with a status the file's ``EXPECT`` allows (``None``: closed unanswered),
in a bounded answer that sets no cookie and echoes no markup, with no warning or traceback
logged, and the server answers ``/healthz`` right after. The whole corpus is then sent to a
real consumer, which keeps reading and answers ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry, Counter

from audit_logging.metrics import endpoints
from audit_logging.metrics.endpoints import EndpointServer
from audit_logging.settings import Settings
from tests._ports import free_port
from tests.consumer._helpers import bodies_of, make_records, publish, wait_until
from tests.consumer._scrape import get, readyz
from tests.consumer._sinks import opensearch_count
from tests.consumer.conftest import StartConsumer

CORPUS = Path(__file__).parent / "endpoint_requests"
MAX_ANSWER = 64 * 1024
READ_FOR = 15.0
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.py"))


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"endpoint_{path.stem.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def send_raw(port: int, request: bytes) -> bytes:
    """Send ``request``, close our side, and read the answer until the server closes (at
    most a little past MAX_ANSWER, within READ_FOR s)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_FOR) as connection:
        try:
            connection.sendall(request)
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading it all (a 414)
        deadline = time.monotonic() + READ_FOR
        while len(answer) <= MAX_ANSWER and time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
    return answer


def status_of(answer: bytes) -> int | None:
    if not answer:
        return None
    match = _STATUS_LINE.match(answer)
    assert match is not None, f"not an HTTP answer: {answer[:200]!r}"
    return int(match.group(1))


def check_answer(case: ModuleType, answer: bytes) -> None:
    assert len(answer) <= MAX_ANSWER, f"an answer of {len(answer)} bytes"
    assert status_of(answer) in case.EXPECT, answer[:300]
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert b"set-cookie" not in head
    assert b"<script" not in answer.lower()
    if status_of(answer) not in (None, 100):
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert body == b"" or (body.startswith(b"{") and len(body) < 200), body[:300]


@pytest.fixture
def server() -> Iterator[EndpointServer]:
    registry = CollectorRegistry()
    Counter("demo_things", "Things counted.", registry=registry).inc()
    routes = {
        "/metrics": endpoints.metrics_route(registry),
        "/healthz": endpoints.alive,
        "/readyz": lambda: endpoints.json_response(200, {"status": "ready"}),
    }
    running = EndpointServer("127.0.0.1", 0, routes).start()
    yield running
    running.close()


def test_the_corpus_is_there() -> None:
    assert len(corpus()) >= 20


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_the_endpoint_server_answers_within_bounds_and_keeps_serving(
    path: Path, server: EndpointServer, caplog: pytest.LogCaptureFixture
) -> None:
    case = load(path)
    caplog.set_level(logging.DEBUG, logger="audit_logging")
    check_answer(case, send_raw(server.port, case.REQUEST))
    assert get(server.port, "/healthz") == (200, b'{"status": "alive"}\n')
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert logged == [], [r.getMessage() for r in logged]


@pytest.mark.services
@pytest.mark.slow
def test_a_real_consumer_takes_the_whole_corpus_and_keeps_reading(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    publish(settings, bodies_of(make_records(5)))
    port = free_port()
    consumer = start_consumer("--batch-size", "5", "--metrics-port", str(port))
    wait_until("/readyz 200", lambda: readyz(port), lambda answer: answer[0] == 200, 60)
    for path in corpus():
        case = load(path)
        check_answer(case, send_raw(port, case.REQUEST))
    assert get(port, "/healthz")[0] == 200
    assert readyz(port)[0] == 200
    publish(settings, bodies_of(make_records(5)))
    wait_until("10 indexed", lambda: opensearch_count(settings), lambda n: n == 10, 60)
    assert consumer.running()
    assert consumer.stop() == 0
    assert "Traceback" not in consumer.log()
