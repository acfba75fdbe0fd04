"""Fixtures shared by the suite.

Service fixtures read ``devstack/local.env`` (written by ``make services``) and give each test
its own stream, index prefix and S3 prefix, removed afterwards. A missing service fails the
test: it never skips, in CI or elsewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_logging.settings import Settings, read_env_file
from tests._stack import delete_indices, delete_objects, delete_stream, unique

REPO = Path(__file__).resolve().parent.parent
LOCAL_ENV = REPO / "devstack" / "local.env"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the logging configuration as each test found it."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.level, handlers, lg.propagate, lg.disabled = saved[name]
            lg.handlers[:] = handlers
        else:
            lg.handlers.clear()


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local stack's settings; fails (never skips) when ``make services`` has not run."""
    if not LOCAL_ENV.exists():
        pytest.fail(f"{LOCAL_ENV} is missing: run `make services` (or `make test`) first")
    env = read_env_file(LOCAL_ENV)
    # The ports make services wrote (devstack's ports can be moved by environment variables).
    s3_port = int(env.get("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000").rsplit(":", 1)[1])
    for name, port in (
        ("RabbitMQ stream", int(env.get("RABBITMQ_STREAM_PORT", "5552"))),
        ("OpenSearch", int(env.get("OPENSEARCH_PORT", "9200"))),
        ("S3 server", s3_port),
    ):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError as exc:
            pytest.fail(f"{name} is not reachable on 127.0.0.1:{port} ({exc}): run `make services`")
    return env


@pytest.fixture(scope="session")
def stack_settings(stack_env: dict[str, str]) -> Settings:
    return Settings.load(environ=stack_env, env_file=None)


@pytest.fixture
def stream_name(stack_settings: Settings) -> Iterator[str]:
    name = unique("test-stream")
    yield name
    asyncio.run(delete_stream(stack_settings, name))


@pytest.fixture
def index_prefix(stack_settings: Settings) -> Iterator[str]:
    prefix = unique("test-audit")
    yield prefix
    delete_indices(stack_settings, prefix)


@pytest.fixture
def s3_prefix(stack_settings: Settings) -> Iterator[str]:
    prefix = unique("tests") + "/"
    yield prefix
    delete_objects(stack_settings, prefix)


@pytest.fixture
def settings(
    stack_settings: Settings, stream_name: str, index_prefix: str, s3_prefix: str, tmp_path: Path
) -> Settings:
    """Settings for the real local stack, with this test's own names."""
    return dataclasses.replace(
        stack_settings,
        rabbitmq_stream_name=stream_name,
        opensearch_index_prefix=index_prefix,
        s3_prefix=s3_prefix,
        spool_dir=tmp_path / "spool",
    )
