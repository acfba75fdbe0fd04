"""The README's "Behind a proxy" section, run as it stands against real servers: uvicorn
with and without its own proxy-header rewriting, nginx in front of it, and the header
shape an AWS Application Load Balancer sends. Records are read back from the real stream."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import audit_logging
from audit_logging.settings import Settings
from tests._ports import free_port, port_open
from tests._readme import command_block
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env
from tests.handlers._shutdown import server_group, stop
from tests.test_readme_recipes import HASH_KEY, load, recipe

pytestmark = pytest.mark.services

REWRITE_WARNING = "replaced the client address"

# What every app here serves: one record per request, its log_id in the answer.
ROUTE = """

@app.get("/{n}")
async def view(n: str) -> dict[str, str]:
    return {"log_id": audit_logging.log_audit_event(action="VIEW", object_id=n)}
"""

NO_PROXY_APP = """
import audit_logging
from fastapi import FastAPI
from audit_logging.middleware import AuditMiddleware

audit_logging.configure()
app = FastAPI()
app.add_middleware(AuditMiddleware)  # clients connect straight to the server
""" + ROUTE


def wait_until_up(port: int) -> None:
    """A port probe, not a request: a request would add a record to the stream."""
    deadline = time.monotonic() + 60
    while not port_open(port):
        assert time.monotonic() < deadline, f"nothing listens on {port}"
        time.sleep(0.1)


def server_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """An app process on the real broker, this test's stream and spool, ``app.py`` in
    ``tmp_path`` importable."""
    return app_env(settings, None, AUDIT_LOG_HASH_KEY=HASH_KEY,
                   PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")


def recorded_ips(settings: Settings, log_ids: list[str]) -> set[str | None]:
    records = stream_records(settings, settings.rabbitmq_stream_name, len(log_ids))
    by_id = {r["log_id"]: r for r in records}
    return {by_id[log_id]["ip_address"] for log_id in log_ids}


# The README's command lines and the word in each that turns the server's rewriting off.
SERVERS = {"uvicorn": "--no-proxy-headers", "gunicorn-uvicorn-worker": "--forwarded-allow-ips="}


def readme_server(name: str, port: int, *, keep_proxy_headers: bool) -> list[str]:
    words = shlex.split(command_block(name))
    assert SERVERS[name] in words
    if keep_proxy_headers:  # the server's default
        words.remove(SERVERS[name])
    where = (["--host", "127.0.0.1", "--port", str(port)] if name == "uvicorn"
             else ["--bind", f"127.0.0.1:{port}"])
    return [sys.executable, "-m", *words, *where]


@pytest.mark.parametrize("keep_proxy_headers", [True, False], ids=["default", "readme"])
@pytest.mark.parametrize("name", SERVERS)
def test_a_server_rewriting_the_client_is_noticed_once(
    settings: Settings, tmp_path: Path, name: str, keep_proxy_headers: bool
) -> None:
    port = free_port()
    command = readme_server(name, port, keep_proxy_headers=keep_proxy_headers)
    (tmp_path / "app.py").write_text(NO_PROXY_APP, encoding="utf-8")
    with server_group(command, server_env(settings, tmp_path), tmp_path) as server:
        wait_until_up(port)
        # From 127.0.0.1, which both servers trust by default, with a forged header.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Connection": "close", "X-Forwarded-For": "6.6.6.6"}) as http:
            log_ids = [http.get(f"/{i}").json()["log_id"] for i in range(10)]
        _, stderr = stop(server)
    assert server.returncode == 0, stderr
    warnings = stderr.count(REWRITE_WARNING)
    if keep_proxy_headers:
        assert recorded_ips(settings, log_ids) == {"6.6.6.6"}  # what the server chose
        assert 1 <= warnings <= 2, stderr  # once per worker process, never per request
        assert "--no-proxy-headers" in stderr and "--forwarded-allow-ips" in stderr
    else:
        assert recorded_ips(settings, log_ids) == {"127.0.0.1"}  # the TCP peer
        assert warnings == 0, stderr


NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{listen};
{location}
    }}
}}
"""


def test_nginx_in_front_of_uvicorn(settings: Settings, tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "this test needs nginx: bash devstack/nginx.sh install"
    port, listen = free_port(), free_port()
    location = command_block("nginx").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in location
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp_path, listen=listen, location=location),
                    encoding="utf-8")
    app = recipe("behind-nginx") + ROUTE
    assert "trusted_proxies" in app
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-e",
                              str(tmp_path / "error.log"), "-g", "daemon off;"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (tmp_path / "app.py").write_text(app, encoding="utf-8")
        command = readme_server("uvicorn", port, keep_proxy_headers=False)
        with server_group(command, server_env(settings, tmp_path), tmp_path) as server:
            # The client is 127.0.0.2: not a trusted proxy, and sends a forged header.
            transport = httpx.HTTPTransport(local_address="127.0.0.2")
            wait_until_up(port)
            with httpx.Client(base_url=f"http://127.0.0.1:{listen}", transport=transport,
                              timeout=30, headers={"X-Forwarded-For": "6.6.6.6"}) as http:
                deadline = time.monotonic() + 30
                while (first := http.get("/0")).status_code == 502:  # nginx up before uvicorn
                    assert time.monotonic() < deadline, first.text
                    time.sleep(0.1)
                log_ids = [first.json()["log_id"],
                           *(http.get(f"/{i}").json()["log_id"] for i in range(1, 5))]
            _, stderr = stop(server)
    finally:
        proxy.send_signal(signal.SIGQUIT)
        proxy.communicate(timeout=30)
    assert server.returncode == 0, stderr
    # nginx appended the peer it saw to the forged value; the walk stops there.
    assert recorded_ips(settings, log_ids) == {"127.0.0.2"}
    assert REWRITE_WARNING not in stderr, stderr


@pytest.fixture
def recipe_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, stack_env: dict[str, str]
               ) -> Iterator[Settings]:
    """The environment an app on the local stack has, for a recipe run in this process."""
    for key, value in server_env(settings, settings.spool_dir).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(settings.spool_dir.parent)  # no stray .env from the work tree
    yield settings
    audit_logging.shutdown(timeout=10)


def test_alb_recipe(recipe_env: Settings) -> None:
    module = load("behind-alb", "recipe_behind_alb")
    exec(compile(ROUTE, "<route>", "exec"), module.__dict__)

    async def call(headers: dict[str, str]) -> str:
        # An ALB node connects from your VPC's subnet and appends the client's address
        # to whatever X-Forwarded-For the client sent.
        transport = httpx.ASGITransport(app=module.app, client=("10.0.3.17", 43210))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            response = await http.get("/alb", headers=headers)
        assert response.status_code == 200
        return str(response.json()["log_id"])

    forged = asyncio.run(call({"X-Forwarded-For": "6.6.6.6, 203.0.113.50"}))
    plain = asyncio.run(call({"X-Forwarded-For": "198.51.100.4"}))
    assert audit_logging.flush(timeout=30) == 0
    stream = recipe_env.rabbitmq_stream_name
    records = {r["log_id"]: r for r in stream_records(recipe_env, stream, 2)}
    assert records[forged]["ip_address"] == "203.0.113.50"
    assert records[plain]["ip_address"] == "198.51.100.4"
