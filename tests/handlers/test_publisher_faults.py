"""The publisher through broker faults made in the test: connections cut, a broker that
accepts TCP and never answers, one that hangs up. A proxy owned by the test stands between
the publisher and the real RabbitMQ, so the shared broker is never stopped."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from tests._ports import cut_own_connections
from tests._proxy import TcpProxy, cut, tcp_proxy
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env, lines_on_disk
from tests.handlers._records import emit_records

pytestmark = pytest.mark.services


@pytest.fixture
def proxy(settings: Settings) -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", settings.rabbitmq_stream_port) as proxy:
        yield proxy


def test_flush_waits_its_whole_timeout_while_the_link_reconnects(
    settings: Settings, proxy: TcpProxy
) -> None:
    handler = AuditHandler(settings=dataclasses.replace(settings, rabbitmq_stream_port=proxy.port))
    try:
        emit_records(handler, 0, 100)
        assert handler.flush(timeout=30) == 0
        # The connection drops and the reconnect hangs (CONNECT_TIMEOUT) until the broker
        # answers again: flush must keep waiting, not give up when the loop looks idle.
        proxy.hang()
        cut_own_connections(settings.rabbitmq_stream_port)
        emit_records(handler, 100, 100)
        threading.Timer(3.0, proxy.forward).start()
        started = time.monotonic()
        left = handler.flush(timeout=60)
        took = time.monotonic() - started
        assert left == 0, f"{left} unconfirmed after {took:.1f} s: {handler.stats()}"
    finally:
        handler.close(timeout=10)
    records = stream_records(settings, settings.rabbitmq_stream_name, 200)
    assert sorted(int(r["object_id"]) for r in records) == list(range(200))
    assert handler.stats()["lost"] == 0


LOG_FOR_A_WHILE = """
import logging, time
import audit_logging
from audit_logging.settings import Settings
audit_logging.configure(Settings.load(env_file=None))
for i in range(100):
    logging.getLogger("audit").info("m", extra={"action": "CREATE", "object_id": str(i)})
    time.sleep(0.01)
"""


@pytest.fixture
def garbling_port() -> Iterator[int]:
    """A "broker" that reads the client's first frame and answers with a frame of no known
    kind, then says nothing more (as a proxy or another service on the port might)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
                client.recv(4096)
                client.sendall(b"\x00\x00\x00\x08garbage!")
            except OSError:
                return
            held.append(client)

    threading.Thread(target=serve, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()
    for sock in held:
        cut(sock)


def test_rstream_errors_never_reach_the_apps_stderr(
    settings: Settings, garbling_port: int
) -> None:
    env = app_env(settings, garbling_port, RABBITMQ_STREAM_HOST="127.0.0.1")
    done = subprocess.run([sys.executable, "-c", LOG_FOR_A_WHILE], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    for leak in ("Task exception was never retrieved", "Exception in callback", "Traceback"):
        assert leak not in done.stderr, done.stderr
    assert "100 audit records were not confirmed" in done.stderr, done.stderr
    assert lines_on_disk(Path(settings.spool_dir)) == 100
