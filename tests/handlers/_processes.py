"""Apps run as processes of their own, against this test's stream and spool folder."""

from __future__ import annotations

import os
from pathlib import Path

from audit_logging.settings import Settings

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
