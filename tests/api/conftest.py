"""Fixtures for the query API: an app over this test's own index prefix, a client with a
valid token, a way to index real schema-v1 records, and the reads' captured audit records."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers
from starlette.applications import Starlette
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.record import build_record
from audit_logging.search_index import index_for, install_template
from audit_logging.settings import Secret, Settings, read_env_file
from tests._stack import opensearch_client
from tests.conftest import LOCAL_ENV

IndexRecords = Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any]]]


class Capture(logging.Handler):
    """Keeps every record the "audit" logger emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """As the suite's, but the API needs only OpenSearch: it fails (never skips) without it,
    and does not fail because RabbitMQ or the S3 server happen to be down."""
    if not LOCAL_ENV.exists():
        pytest.fail(f"{LOCAL_ENV} is missing: run `make services` (or `make test`) first")
    env = read_env_file(LOCAL_ENV)
    try:
        socket.create_connection(("127.0.0.1", 9200), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"OpenSearch is not reachable on 127.0.0.1:9200 ({exc}): run `make services`")
    return env


@pytest.fixture
def token() -> str:
    return secrets.token_hex(24)


@pytest.fixture
def api_settings(
    stack_settings: Settings, index_prefix: str, s3_prefix: str, token: str
) -> Settings:
    """This test's own index prefix and archive prefix (searches reaching past the index's
    retention read the archive too)."""
    return dataclasses.replace(
        stack_settings,
        opensearch_index_prefix=index_prefix,
        s3_prefix=s3_prefix,
        api_tokens=Secret(token),
    )


@pytest.fixture
def os_client(stack_settings: Settings) -> Iterator[OpenSearch]:
    client = opensearch_client(stack_settings)
    yield client
    client.close()


@pytest.fixture
def index_records(os_client: OpenSearch, index_prefix: str) -> IndexRecords:
    """Index records (``build_record`` of each field mapping) as the consumer would:
    template, monthly index by timestamp, ``_id = log_id``; searchable on return."""
    install_template(os_client, index_prefix)

    def index(fields_list: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        records = [build_record(fields) for fields in fields_list]
        actions = (
            {
                "_index": index_for(index_prefix, record["timestamp"]),
                "_id": record["log_id"],
                "_source": record,
            }
            for record in records
        )
        ok, failed = helpers.bulk(os_client, actions, chunk_size=5000, refresh="wait_for")
        assert ok == len(records) and not failed
        return records

    return index


@pytest.fixture
def app(api_settings: Settings) -> Starlette:
    return create_app(api_settings)


@pytest.fixture
def client(app: Starlette, token: str) -> Iterator[TestClient]:
    """A client with a valid token; the app's lifespan runs for the test's duration."""
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as test_client:
        yield test_client


@pytest.fixture
def audit_capture() -> Iterator[Capture]:
    handler = Capture()
    audit = logging.getLogger("audit")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    yield handler
    audit.removeHandler(handler)
