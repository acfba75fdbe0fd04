"""Apps run as processes of their own, against this test's stream and spool folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from audit_logging.settings import Settings
from tests._ports import free_port

REPO = Path(__file__).resolve().parents[2]


def app_env(settings: Settings, port: int | None = None, **extra: str) -> dict[str, str]:
    """The environment of such a process: this test's broker (or ``port`` in its place),
    stream and spool folder, the repository on its path, then ``extra``."""
    return os.environ | {
        "RABBITMQ_STREAM_HOST": settings.rabbitmq_stream_host,
        "RABBITMQ_STREAM_PORT": str(settings.rabbitmq_stream_port if port is None else port),
        "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
        "AUDIT_LOG_SPOOL_DIR": str(settings.spool_dir),
        "PYTHONPATH": str(REPO),
    } | extra


def lines_on_disk(spool_dir: Path) -> int:
    """The records in the spool's segment files."""
    return sum(
        segment.read_bytes().count(b"\n") for segment in spool_dir.glob("*/seg-*.log")
    )


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


def leave_orphan(
    settings: Settings, count: int, umask: int = 0o022, *, partitions: int = 1
) -> Path:
    """A process that could not reach the broker dies with ``count`` records spooled."""
    env = app_env(settings, free_port(), AUDIT_LOG_STREAM_PARTITIONS=str(partitions))
    done = subprocess.run([sys.executable, "-c", LEAVE_A_SPOOL, oct(umask), str(count)],
                          env=env, cwd=REPO, timeout=60, check=False,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (folder,) = Path(settings.spool_dir).iterdir()
    return folder
