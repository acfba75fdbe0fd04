"""Servers stopped while the broker hangs, as the README runs them: every record whose
log_id the app answered with reaches the stream exactly once, sent by the next process
that starts on the same spool.

- ``uvicorn --workers 2`` (the README's command line): its workers end without running
  exit hooks, so the middleware's drain at the end of the lifespan is what keeps them
  (with ``drain_at_shutdown=0`` the records are lost and this test fails).
- gunicorn's ``gthread`` workers run exit hooks on SIGTERM: ``configure()``'s own exit hook
  keeps them, no gunicorn hook needed.
- gunicorn with ``uvicorn.workers.UvicornWorker`` (the README's command line): like uvicorn,
  no exit hooks and no ``worker_exit`` either; the lifespan drain keeps them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from audit_logging.settings import Settings
from tests._ports import free_port
from tests._readme import command_block
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env, lines_on_disk
from tests.handlers._shutdown import ADOPT_AND_SEND, KEPT, server_group, stop

pytestmark = pytest.mark.services

REQUESTS = 60

FASTAPI_APP = """
import audit_logging
from fastapi import FastAPI
from audit_logging.middleware import AuditMiddleware

audit_logging.configure()

app = FastAPI()
app.add_middleware(AuditMiddleware, drain_at_shutdown=5.0)


@app.get("/{n}")
async def view(n: str) -> dict[str, str]:
    return {"log_id": audit_logging.log_audit_event(action="VIEW", object_id=n)}
"""

WSGI_APP = """
import json
import audit_logging
from audit_logging.middleware import AuditWSGIMiddleware

audit_logging.configure()


def view(environ, start_response):
    log_id = audit_logging.log_audit_event(action="VIEW", object_id=environ["PATH_INFO"][1:])
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"log_id": log_id}).encode()]


app = AuditWSGIMiddleware(view)
"""


def readme_command(name: str) -> list[str]:
    """The README's command line, run as ``python -m`` with this interpreter."""
    return [sys.executable, "-m", *shlex.split(command_block(name))]


def serve_and_stop(command: list[str], app: str, settings: Settings, *, hung_port: int,
                   tmp_path: Path, port: int) -> tuple[list[str], str]:
    """Serve ``app`` as ``app.py`` while the broker hangs, make REQUESTS requests, SIGTERM
    the server; the log_ids the app answered with and the server's stderr."""
    (tmp_path / "app.py").write_text(app, encoding="utf-8")
    env = app_env(settings, hung_port, AUDIT_LOG_HASH_KEY="server-shutdown-test-key-0123",
                  PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    with server_group(command, env, tmp_path) as server:
        # A connection per request: the kernel spreads them over the workers.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Connection": "close"}) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    first = http.get("/0")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            responses = [first, *(http.get(f"/{i}") for i in range(1, REQUESTS))]
        assert [r.status_code for r in responses] == [200] * REQUESTS
        _, stderr = stop(server)
    assert server.returncode == 0, stderr
    return [r.json()["log_id"] for r in responses], stderr


def assert_each_reported_record_arrives_once(settings: Settings, log_ids: list[str],
                                             stderr: str) -> None:
    """The workers said they kept them all, the spool holds them, and the next process on
    the same spool sends them: the stream holds each log_id once, and nothing else."""
    assert sum(int(n) for n in KEPT.findall(stderr)) == REQUESTS, stderr
    assert lines_on_disk(Path(settings.spool_dir)) == REQUESTS
    assert "could not be kept" not in stderr, stderr
    done = subprocess.run([sys.executable, "-c", ADOPT_AND_SEND], env=app_env(settings),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"left": 0' in done.stdout, done.stdout + done.stderr
    records = stream_records(settings, settings.rabbitmq_stream_name, REQUESTS + 1)
    sent = [r["log_id"] for r in records if r["object_id"] != "next"]
    assert len(sent) == len(set(sent)) == REQUESTS  # no duplicate
    assert set(sent) == set(log_ids)  # none lost, none made up


def test_uvicorn_workers_readme_command(settings: Settings, hung_port: int,
                                        tmp_path: Path) -> None:
    port = free_port()
    command = [*readme_command("uvicorn"), "--host", "127.0.0.1", "--port", str(port)]
    assert "--workers" in command
    log_ids, stderr = serve_and_stop(command, FASTAPI_APP, settings, hung_port=hung_port,
                                     tmp_path=tmp_path, port=port)
    assert_each_reported_record_arrives_once(settings, log_ids, stderr)


def test_gunicorn_gthread_workers(settings: Settings, hung_port: int, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "app:app", "--workers", "2",
               "--worker-class", "gthread", "--threads", "4", "--bind", f"127.0.0.1:{port}",
               "--graceful-timeout", "60"]
    log_ids, stderr = serve_and_stop(command, WSGI_APP, settings, hung_port=hung_port,
                                     tmp_path=tmp_path, port=port)
    assert_each_reported_record_arrives_once(settings, log_ids, stderr)


def test_gunicorn_uvicorn_workers_readme_command(settings: Settings, hung_port: int,
                                                 tmp_path: Path) -> None:
    port = free_port()
    command = [*readme_command("gunicorn-uvicorn-worker"), "--bind", f"127.0.0.1:{port}",
               "--graceful-timeout", "60"]
    log_ids, stderr = serve_and_stop(command, FASTAPI_APP, settings, hung_port=hung_port,
                                     tmp_path=tmp_path, port=port)
    assert_each_reported_record_arrives_once(settings, log_ids, stderr)
