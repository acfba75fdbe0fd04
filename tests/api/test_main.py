"""``python -m audit_logging.api``: refuses to start without auth, serves with uvicorn, and a
missing ``api`` extra is an error naming it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audit_logging.settings import Settings
from tests._stack import delete_stream, stream_records

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    # Only what the server needs: nothing from the developer's own environment leaks in.
    # Its own audit records (reads are audited) go to a stream and spool of this test's.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "OPENSEARCH_HOST": settings.opensearch_host,
        "OPENSEARCH_PORT": str(settings.opensearch_port),
        "OPENSEARCH_INDEX_PREFIX": settings.opensearch_index_prefix,
        "RABBITMQ_STREAM_HOST": settings.rabbitmq_stream_host,
        "RABBITMQ_STREAM_PORT": str(settings.rabbitmq_stream_port),
        "RABBITMQ_STREAM_USER": settings.rabbitmq_stream_user,
        "RABBITMQ_STREAM_PASSWORD": settings.rabbitmq_stream_password.get(),
        "RABBITMQ_STREAM_VHOST": settings.rabbitmq_stream_vhost,
        "RABBITMQ_STREAM_NAME": f"test-api-reads-{settings.opensearch_index_prefix}",
        "AUDIT_LOG_SPOOL_DIR": str(Path(settings.spool_dir).parent / "api-spool"),
    }
    return env | extra


def run_module(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit_logging.api", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_token_it_refuses_to_start_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, env_file=None)
    result = run_module(["--env-file", str(tmp_path / "none.env")], environment(settings))
    assert result.returncode == 2
    assert "AUDIT_LOG_API_TOKENS" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_is_reported_without_a_traceback(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, env_file=None)
    env = environment(settings, OPENSEARCH_PORT="99999", AUDIT_LOG_API_TOKENS="x" * 32)
    result = run_module(["--env-file", str(tmp_path / "none.env")], env)
    assert result.returncode == 2
    assert "OPENSEARCH_PORT" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_api_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from audit_logging.errors import MissingExtraError\n"
        "try:\n    import audit_logging.api\n"
        "except MissingExtraError as exc:\n    print(exc.extra, exc.package, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("api starlette ")
    assert "audit-logging-pipeline[api]" in result.stdout


@contextlib.contextmanager
def serve(env: dict[str, str], *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The API served by ``python -m audit_logging.api`` on a free port, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "audit_logging.api", "--port", str(port), *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not start within 30 s"
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=15)


@pytest.fixture
def served(
    stack_settings: Settings, index_prefix: str, token: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = environment(
        stack_settings, AUDIT_LOG_API_TOKENS=token, OPENSEARCH_INDEX_PREFIX=index_prefix
    )
    with serve(env, "--env-file", str(tmp_path / "none.env")) as served:
        yield served


@pytest.mark.services
def test_it_serves_the_api_over_http(served: tuple[str, subprocess.Popen[str]], token: str) -> None:
    base, process = served
    auth = {"Authorization": f"Bearer {token}"}
    response = httpx.get(f"{base}/api/audit-logs/search/", headers=auth, timeout=10)
    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert "server" not in response.headers  # no version banner
    assert httpx.get(f"{base}/api/audit-logs/search/", timeout=10).status_code == 401
    process.terminate()
    output, _ = process.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert process.returncode == -15
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output
    assert token not in output


@pytest.mark.services
def test_insecure_no_auth_serves_without_a_token_and_warns(
    stack_settings: Settings, index_prefix: str, tmp_path: Path
) -> None:
    env = environment(stack_settings, OPENSEARCH_INDEX_PREFIX=index_prefix)
    with serve(env, "--insecure-no-auth", "--env-file", str(tmp_path / "none.env")) as served:
        base, process = served
        assert httpx.get(f"{base}/api/audit-logs/search/", timeout=10).status_code == 200
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert "WITHOUT AUTHENTICATION" in output


@pytest.mark.services
def test_reads_through_the_server_reach_the_stream_as_audit_records(
    stack_settings: Settings, index_prefix: str, token: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(stack_settings, opensearch_index_prefix=index_prefix,
                                   spool_dir=tmp_path / "spool")
    env = environment(settings, AUDIT_LOG_API_TOKENS=token)
    stream = env["RABBITMQ_STREAM_NAME"]
    try:
        with serve(env, "--env-file", str(tmp_path / "none.env")) as (base, process):
            response = httpx.get(f"{base}/api/audit-logs/search/?action=DELETE",
                                 headers={"Authorization": f"Bearer {token}",
                                          "User-Agent": "auditor-cli/1.0"}, timeout=10)
            assert response.status_code == 200
            process.terminate()  # the server drains its audit handler as it shuts down
            process.communicate(timeout=30)
        (record,) = stream_records(settings, stream, 1)
    finally:
        asyncio.run(delete_stream(settings, stream))
    assert record["action"] == "SEARCH"
    assert record["ip_address"] == "127.0.0.1"
    assert record["user_agent"] == "auditor-cli/1.0"
    assert record["user_id"].startswith("api-token:")
    assert token not in json.dumps(record)


@pytest.mark.services
@pytest.mark.parametrize(
    ("trusted", "expected"), [((), "127.0.0.1"), (("--trusted-proxy", "127.0.0.1"), "6.6.6.6")]
)
def test_only_trusted_proxy_decides_the_recorded_client_address(  # noqa: PLR0917 - fixtures, params
    stack_settings: Settings,
    index_prefix: str,
    token: str,
    tmp_path: Path,
    trusted: tuple[str, ...],
    expected: str,
) -> None:
    # uvicorn's own proxy-header handling believes X-Forwarded-For from 127.0.0.1 by default;
    # only --trusted-proxy may make the server take an address from a header.
    settings = dataclasses.replace(stack_settings, opensearch_index_prefix=index_prefix,
                                   spool_dir=tmp_path / "spool")
    # uvicorn's own setting, were its proxy-header handling on, would trust every peer.
    env = environment(settings, AUDIT_LOG_API_TOKENS=token, FORWARDED_ALLOW_IPS="*")
    stream = env["RABBITMQ_STREAM_NAME"]
    forged = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "6.6.6.6"}
    try:
        with serve(env, "--env-file", str(tmp_path / "none.env"), *trusted) as (base, process):
            response = httpx.get(f"{base}/api/audit-logs/search/?action=DELETE",
                                 headers=forged, timeout=10)
            assert response.status_code == 200
            process.terminate()
            output, _ = process.communicate(timeout=30)
        (record,) = stream_records(settings, stream, 1)
    finally:
        asyncio.run(delete_stream(settings, stream))
    assert record["action"] == "SEARCH"
    assert record["ip_address"] == expected
    (access,) = [line for line in output.splitlines() if "GET /api/audit-logs/search/" in line]
    assert '127.0.0.1:' in access and "6.6.6.6" not in access, access
