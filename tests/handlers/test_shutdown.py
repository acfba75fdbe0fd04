"""Shutdown against a hung broker: what is in memory reaches the spool before the process
goes, the message counts what is on disk, and the next process sends it all."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from audit_logging.settings import Settings
from tests._ports import free_port
from tests.handlers._processes import REPO, app_env, lines_on_disk
from tests.handlers._shutdown import (
    KEPT,
    assert_the_next_process_sends_all,
    assert_the_workers_spooled_what_they_reported,
    server_group,
    stop,
)

pytestmark = pytest.mark.services

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


def test_a_script_exiting_with_a_hung_broker_spools_every_record_it_reports(
    settings: Settings, hung_port: int
) -> None:
    # The subprocess timeout is the hang guard: exit must not wait on the hung broker.
    done = subprocess.run([sys.executable, "-c", LOG_AND_EXIT], env=app_env(settings, hung_port),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    reported = [int(n) for n in KEPT.findall(done.stderr)]
    assert reported == [100], done.stderr
    assert lines_on_disk(Path(settings.spool_dir)) == 100
    assert '"lost": 0' in done.stdout, done.stdout
    assert "Task exception was never retrieved" not in done.stderr, done.stderr
    assert_the_next_process_sends_all(settings)


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


def test_gunicorn_sync_workers_stopped_with_a_hung_broker_spool_what_they_report(
    settings: Settings, hung_port: int, tmp_path: Path
) -> None:
    (tmp_path / "hung_app.py").write_text(GUNICORN_APP, encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", "3", "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--pythonpath", f"{tmp_path},{REPO}",
               "--graceful-timeout", "60", "hung_app:app"]
    with server_group(command, app_env(settings, hung_port), tmp_path) as server:
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
        _, stderr = stop(server)
    assert_the_workers_spooled_what_they_reported(settings, server, stderr)
