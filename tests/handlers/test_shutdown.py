"""Shutdown against a hung broker: what is in memory reaches the spool before the process
goes, the message counts what is on disk, and the next process sends it all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audit_logging.settings import Settings
from tests._stack import stream_records

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]
KEPT = re.compile(r"(\d+) audit records were not confirmed by the broker before shutdown")

LOG_AND_EXIT = """
import atexit, json, logging, sys, time
import audit_logging
from audit_logging.settings import Settings
handler = None
def report():  # registered first, so it runs after audit_logging's own exit hook
    print(json.dumps(handler.stats()), flush=True)
atexit.register(report)
handler = audit_logging.configure(Settings.load(env_file=None))
for i in range(100):
    logging.getLogger("audit").info("m", extra={"action": "CREATE", "object_id": str(i)})
    time.sleep(0.01)  # as an app does: the publisher is connecting meanwhile
"""

ADOPT_AND_SEND = """
import json, logging, sys, time
from pathlib import Path
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
settings = Settings.load(env_file=None)
handler = AuditHandler(settings=settings)
logging.getLogger("audit").addHandler(handler)
logging.getLogger("audit").setLevel(logging.INFO)
logging.getLogger("audit").info("m", extra={"action": "CREATE", "object_id": "next"})
deadline = time.monotonic() + 60
while len(list(Path(settings.spool_dir).iterdir())) > 1 and time.monotonic() < deadline:
    time.sleep(0.2)
left = handler.close(timeout=30)
print(json.dumps(handler.stats() | {"left": left}), flush=True)
"""


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A broker that takes TCP connections and never answers (as one SIGSTOPped does):
    the kernel completes the handshakes of a listening socket nobody accepts from."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])


def _env(settings: Settings, port: int) -> dict[str, str]:
    return os.environ | {
        "RABBITMQ_STREAM_HOST": settings.rabbitmq_stream_host,
        "RABBITMQ_STREAM_PORT": str(port),
        "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
        "AUDIT_LOG_SPOOL_DIR": str(settings.spool_dir),
        "PYTHONPATH": str(REPO),
    }


def _lines_on_disk(spool_dir: Path) -> int:
    return sum(
        segment.read_bytes().count(b"\n") for segment in spool_dir.glob("*/seg-*.log")
    )


def _send_what_is_spooled(settings: Settings) -> None:
    """A new process pointed at the real broker with the same spool folder sends it all."""
    done = subprocess.run([sys.executable, "-c", ADOPT_AND_SEND],
                          env=_env(settings, settings.rabbitmq_stream_port), cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"left": 0' in done.stdout, done.stdout + done.stderr


def test_a_script_exiting_with_a_hung_broker_spools_every_record_it_reports(
    settings: Settings, hung_port: int
) -> None:
    # The subprocess timeout is the hang guard: exit must not wait on the hung broker.
    done = subprocess.run([sys.executable, "-c", LOG_AND_EXIT], env=_env(settings, hung_port),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    reported = [int(n) for n in KEPT.findall(done.stderr)]
    assert reported == [100], done.stderr
    assert _lines_on_disk(Path(settings.spool_dir)) == 100
    assert '"lost": 0' in done.stdout, done.stdout
    assert "Task exception was never retrieved" not in done.stderr, done.stderr
    _send_what_is_spooled(settings)
    records = stream_records(settings, settings.rabbitmq_stream_name, 101)
    assert sorted(r["object_id"] for r in records) == sorted([*map(str, range(100)), "next"])


GUNICORN_APP = """
import logging
import audit_logging
from audit_logging.settings import Settings

audit_logging.configure(Settings.load(env_file=None))

def app(environ, start_response):
    logging.getLogger("audit").info(
        "viewed", extra={"action": "VIEW", "object_id": environ["PATH_INFO"].strip("/")})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_sync_workers_stopped_with_a_hung_broker_spool_what_they_report(
    settings: Settings, hung_port: int, tmp_path: Path
) -> None:
    (tmp_path / "hung_app.py").write_text(GUNICORN_APP, encoding="utf-8")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "3", "--worker-class", "sync",
         "--bind", f"127.0.0.1:{port}", "--pythonpath", f"{tmp_path},{REPO}",
         "--graceful-timeout", "60", "hung_app:app"],
        env=_env(settings, hung_port), cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: a failed test ends the workers too
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            statuses = [http.get(f"/{i}").status_code for i in range(100)]
        assert statuses == [200] * 100
        time.sleep(1)  # the workers' publishers are stuck connecting to the hung broker
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            # The workers hold stderr open too; only the group's end lets communicate return.
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()
    assert server.returncode == 0, stderr
    reported = sum(int(n) for n in KEPT.findall(stderr))
    assert reported == 100, stderr
    assert _lines_on_disk(Path(settings.spool_dir)) == 100
    assert "Task exception was never retrieved" not in stderr, stderr
    assert "could not be kept" not in stderr, stderr
    _send_what_is_spooled(settings)
    records = stream_records(settings, settings.rabbitmq_stream_name, 101)
    assert sorted(r["object_id"] for r in records) == sorted([*map(str, range(100)), "next"])
