"""``uvicorn --workers 2`` stopped while the broker hangs: each worker puts what it holds in
the spool before it goes, says how many it kept, and the next process sends them all."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from audit_logging.settings import Settings
from tests._ports import free_port
from tests.handlers._processes import REPO, app_env
from tests.handlers._shutdown import (
    assert_the_workers_spooled_what_they_reported,
    server_group,
    stop,
)

pytestmark = pytest.mark.services

# {configure} is one of CONFIGURE; {lifespan} says whether the app answers the lifespan
# protocol. A bare ASGI app often does not (uvicorn's own example asserts an "http" scope):
# the middleware then answers for it, so its drain still runs.
ASGI_APP = """
import json, logging, os
import audit_logging
from audit_logging.capture import audit_handlers
from audit_logging.middleware import AuditMiddleware
from audit_logging.settings import Settings

{configure}

async def endpoint(scope, receive, send):
    if scope["type"] == "lifespan" and {lifespan}:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            elif message["type"] == "lifespan.shutdown":
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    assert scope["type"] == "http"
    logging.getLogger("audit").info(
        "viewed", extra={{"action": "VIEW", "object_id": scope["path"].strip("/")}})
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": b"ok"}})

audited = AuditMiddleware(endpoint)

async def app(scope, receive, send):
    # uvicorn's workers end without running exit hooks (they re-raise SIGTERM once served):
    # the counts are printed as the server hears that shutdown is complete, after the drain.
    async def reporting_send(message):
        if message["type"] == "lifespan.shutdown.complete":
            stats = [handler.stats() for handler in audit_handlers()]
            print(json.dumps({{"pid": os.getpid(), "stats": stats}}), flush=True)
        await send(message)

    await audited(scope, receive, reporting_send if scope["type"] == "lifespan" else send)
"""

CONFIGURE = {
    "settings": "audit_logging.configure(Settings.load(env_file=None))",
    "default": "audit_logging.configure()",  # the README's: environment, then .env
}


@pytest.mark.parametrize(
    ("configure", "lifespan"),
    [("settings", True), ("default", True), ("default", False)],
    ids=["configure-settings", "configure-default", "configure-default-no-lifespan"],
)
def test_uvicorn_workers_stopped_with_a_hung_broker_spool_what_they_report(
    settings: Settings, hung_port: int, tmp_path: Path, configure: str, lifespan: bool
) -> None:
    (tmp_path / "hung_asgi.py").write_text(
        ASGI_APP.format(configure=CONFIGURE[configure], lifespan=lifespan), encoding="utf-8"
    )
    port = free_port()
    # The middleware reads the session cookie by default, which needs a hash key.
    env = app_env(settings, hung_port, AUDIT_LOG_HASH_KEY="uvicorn-shutdown-test-key-0123",
                  PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    command = [sys.executable, "-m", "uvicorn", "--workers", "2", "--host", "127.0.0.1",
               "--port", str(port), "hung_asgi:app"]
    with server_group(command, env, tmp_path) as server:
        # uvicorn's parent listens before its workers start: requests wait in the backlog.
        # A connection per request: the kernel spreads them over both workers.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Connection": "close"}) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    statuses = [http.get("/0").status_code]
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "uvicorn did not start"
                    time.sleep(0.1)
            statuses += [http.get(f"/{i}").status_code for i in range(1, 100)]
        assert statuses == [200] * 100
        stdout, stderr = stop(server)
    assert_the_workers_spooled_what_they_reported(settings, server, stderr)
    exits = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len(exits) == 2, stdout + stderr  # both workers drained at shutdown
    assert all(len(e["stats"]) == 1 and e["stats"][0]["lost"] == 0 for e in exits), stdout
