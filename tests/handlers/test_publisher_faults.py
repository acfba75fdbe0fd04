"""The publisher through broker faults made in the test: connections cut, a broker that
accepts TCP and never answers, one that hangs up. A proxy owned by the test stands between
the publisher and the real RabbitMQ, so the shared broker is never stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
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
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env, lines_on_disk

pytestmark = pytest.mark.services


class BrokerProxy:
    """Forwards TCP to the broker; ``hang()`` cuts every connection through it and holds
    new ones unanswered (a SIGSTOPped broker), ``forward()`` serves new ones again.

    rstream opens its first (locator) connection here and publishes on a connection to the
    stream's leader as the broker advertises it: cutting the locator connection is what
    makes the publisher reconnect, and reconnecting goes through here."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.hanging = False
        self.open: list[socket.socket] = []
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.hanging:
                    self.held.append(client)
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self.open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            _cut(sock)

    def hang(self) -> None:
        with self.lock:
            self.hanging = True
            cut, self.open = self.open, []
        for sock in cut:
            _cut(sock)

    def forward(self) -> None:
        with self.lock:
            self.hanging = False

    def close(self) -> None:
        self.hang()
        self.listener.close()
        for sock in self.held:
            _cut(sock)


def cut_own_connections(port: int, pid: int | None = None) -> None:
    """Cut this process's (or ``pid``'s) TCP connections to ``port`` and nobody else's (ss -K,
    iproute2, as root), as a network failure would."""
    assert shutil.which("ss"), "this test needs iproute2's ss: apt-get install iproute2"
    owner = os.getpid() if pid is None else pid
    listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    mine = [match.group(1) for line in listing.splitlines()
            if f"pid={owner}," in line and (match := re.search(r":(\d+)\s+\S+:\d+\s", line))]
    assert mine, "no connection of this process to cut"
    for local in mine:
        subprocess.run(["ss", "-K", "state", "established",
                        f"( sport = :{local} and dport = :{port} )"],
                       check=True, capture_output=True)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy(settings: Settings) -> Iterator[BrokerProxy]:
    proxy = BrokerProxy(settings.rabbitmq_stream_port)
    yield proxy
    proxy.close()


def _log(handler: AuditHandler, first: int, count: int) -> None:
    for i in range(first, first + count):
        record = logging.LogRecord("audit", logging.INFO, __file__, 1, "m", None, None)
        record.action = "CREATE"
        record.object_id = str(i)
        handler.emit(record)


def test_flush_waits_its_whole_timeout_while_the_link_reconnects(
    settings: Settings, proxy: BrokerProxy
) -> None:
    handler = AuditHandler(settings=dataclasses.replace(settings, rabbitmq_stream_port=proxy.port))
    try:
        _log(handler, 0, 100)
        assert handler.flush(timeout=30) == 0
        # The connection drops and the reconnect hangs (CONNECT_TIMEOUT) until the broker
        # answers again: flush must keep waiting, not give up when the loop looks idle.
        proxy.hang()
        cut_own_connections(settings.rabbitmq_stream_port)
        _log(handler, 100, 100)
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
        _cut(sock)


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
