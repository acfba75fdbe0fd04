"""Run the test project's manage.py in a subprocess, with settings of a test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "tests" / "django_project" / "manage.py"


def manage(
    *args: str, settings: str, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``manage.py args`` under ``settings`` in a clean environment (no AUDIT_LOG_* or
    RABBITMQ_* from the caller's: the settings module decides), from ``tmp_path``."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AUDIT_LOG", "RABBITMQ_", "OPENSEARCH_", "AWS_", "DJANGO_"))
    }
    clean.update(
        DJANGO_SETTINGS_MODULE=settings,
        AUDIT_LOG_SPOOL_DIR=str(tmp_path / "spool"),
        DJANGO_TEST_SQLITE=str(tmp_path / "db.sqlite3"),
        PYTHONPATH=str(REPO),
    )
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120, check=False,
    )
