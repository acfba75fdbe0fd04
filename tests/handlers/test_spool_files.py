"""The spool's files: adopted as capture starts, private whatever the umask, and the
overflow moved into the segments without losing a record."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from tests._stack import stream_records

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]

LEAVE_A_SPOOL = """
import logging, os, sys
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
os.umask(int(sys.argv[1], 8))
h = AuditHandler(settings=Settings.load(env_file=None))
log = logging.getLogger("audit"); log.addHandler(h); log.setLevel(logging.INFO)
for i in range(int(sys.argv[2])):
    log.info("offline", extra={"action": "CREATE", "object_id": str(i)})
h.flush(timeout=0.5)
os._exit(0)  # dies without closing: its spool is an orphan
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leave_orphan(settings: Settings, count: int, umask: int = 0o022) -> Path:
    """A process that could not reach the broker dies with ``count`` records spooled."""
    env = os.environ | {
        "RABBITMQ_STREAM_HOST": settings.rabbitmq_stream_host,
        "RABBITMQ_STREAM_PORT": str(_closed_port()),
        "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
        "AUDIT_LOG_SPOOL_DIR": str(settings.spool_dir),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run([sys.executable, "-c", LEAVE_A_SPOOL, oct(umask), str(count)],
                          env=env, cwd=REPO, timeout=60, check=False,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (folder,) = Path(settings.spool_dir).iterdir()
    return folder


def test_a_spool_left_by_a_dead_process_is_sent_as_capture_starts(settings: Settings) -> None:
    orphan = leave_orphan(settings, 100)
    assert sum(p.read_bytes().count(b"\n") for p in orphan.glob("seg-*.log")) == 100
    handler = AuditHandler(settings=settings)  # and no record logged
    try:
        deadline = time.monotonic() + 60
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not orphan.exists(), "the orphan spool was not adopted"
        records = stream_records(settings, settings.rabbitmq_stream_name, 100)
        assert sorted(int(r["object_id"]) for r in records) == list(range(100))
    finally:
        assert handler.close(timeout=10) == 0
    assert handler.stats()["lost"] == 0
