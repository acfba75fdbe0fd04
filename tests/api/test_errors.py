"""Every failure is the JSON error shape with the right status; never a stack trace."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import socket
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionTimeout, TransportError
from starlette.testclient import TestClient

from audit_logging.api import Caller, create_app
from audit_logging.settings import Settings
from tests.api.conftest import IndexRecords

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"
DETAIL = "/api/audit-logs/detail/0190d2a4-5b6c-7d8e-9f00-112233445566/"


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=abc", "page_size"),
        ("from_offset=9990", "from_offset"),
        ("user_id=a&user_id=b", "user_id"),
        ("userid=a", "userid"),
        ("Action=CREATE", "Action"),
        ("action=" + "A" * 65, "action"),
        ("search_term=" + "x" * 101, "search_term"),
        ("start_time=tomorrow", "start_time"),
        ("end_time=2026-02-30", "end_time"),
        ("start_time=2026-01-02&end_time=2026-01-01T23:59:59Z", "start_time"),
        ("ip_address=10.0.0.300", "ip_address"),
        ("cursor=garbage", "cursor"),
        ("user_id=", "user_id"),
        ("user_id", "user_id"),
    ],
)
def test_bad_parameters_are_400_naming_them(client: TestClient, query: str, field: str) -> None:
    assert_error(client.get(f"{SEARCH}?{query}"), 400, "bad_parameter", field)


def test_unknown_routes_are_404(client: TestClient) -> None:
    for path in ("/", "/api/audit-logs/", "/api/audit-logs/detail/", "/api/audit-logs/x/"):
        assert_error(client.get(path), 404, "not_found")


def test_a_missing_trailing_slash_is_a_404_with_a_hint_not_a_redirect(client: TestClient) -> None:
    response = client.get("/api/audit-logs/search", follow_redirects=False)
    assert_error(response, 404, "not_found")
    assert "/api/audit-logs/search/?" in response.json()["error"]["message"]
    assert "location" not in response.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405(client: TestClient, method: str) -> None:
    for path in (SEARCH, DETAIL, "/api/audit-logs/openapi.json", "/healthz", "/readyz", "/metrics"):
        response = client.request(method, path)
        assert_error(response, 405, "method_not_allowed")
        assert "GET" in response.headers["allow"]


def test_head_is_answered_like_get(client: TestClient) -> None:
    response = client.head(SEARCH)
    assert response.status_code == 200 and response.content == b""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_opensearch_is_503_with_retry_after(api_settings: Settings, token: str) -> None:
    settings = dataclasses.replace(api_settings, opensearch_port=closed_port())
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for path in (SEARCH, DETAIL):
            response = client.get(path)
            assert_error(response, 503, "search_unavailable")
            assert response.headers["retry-after"] == "5"
        ready = client.get("/readyz", headers={"Authorization": ""})
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["checks"]["opensearch"] == "unreachable"
        assert ready.headers["retry-after"] == "5"
        # Liveness asks no dependency: the process itself is fine.
        health = client.get("/healthz", headers={"Authorization": ""})
        assert health.status_code == 200
        assert health.json() == {"status": "alive"}


def test_healthz_and_readyz_need_no_token_and_readyz_says_each_dependency_answers(
    app: Any, api_settings: Settings
) -> None:
    assert api_settings.s3_bucket is not None  # the archive is read: S3 is checked too
    with TestClient(app) as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert health.status_code == 200
    assert health.json() == {"status": "alive"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"opensearch": "ok", "s3": "ok"}}


class Failing:
    """Stands in for AsyncOpenSearch, failing every search as given."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def search(self, **kwargs: Any) -> Any:
        raise self.error

    async def ping(self, **kwargs: Any) -> bool:
        return True

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ConnectionTimeout("TIMEOUT", "timed out", Exception()), 503, "search_unavailable"),
        (TransportError(503, "cluster_block_exception", {}), 503, "search_unavailable"),
        (TransportError(429, "rejected_execution_exception", {}), 503, "search_unavailable"),
        (TransportError(400, "query_shard_exception secret-detail", {}), 500, "internal_error"),
        (RuntimeError("secret-detail in the exception"), 500, "internal_error"),
    ],
)
def test_search_failures_map_to_503_or_a_bare_500(  # noqa: PLR0917 - fixtures and params
    api_settings: Settings,
    token: str,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
    code: str,
) -> None:
    app = create_app(api_settings, client=Failing(error))  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for path in (SEARCH, DETAIL):
            response = client.get(path)
            assert_error(response, status, code)
            assert "secret-detail" not in response.text
    if status == 500:
        # The details go to the server's log, with the traceback.
        logged = [r for r in caplog.records if r.name == "audit_logging.api"]
        assert logged and all(r.exc_info is not None for r in logged)


def test_a_broken_visibility_filter_is_a_500_not_a_leak(api_settings: Settings) -> None:
    def broken(headers: Any) -> Caller:
        return Caller(id="x", visible_filter={"no_such_query": {}})

    with TestClient(create_app(api_settings, authenticator=broken)) as client:
        # OpenSearch rejects the query: the caller must not get the unfiltered records.
        assert_error(client.get(SEARCH), 500, "internal_error")


def test_a_failing_authenticator_is_a_500(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(headers: Any) -> Caller:
        raise ValueError("key server down")

    with (
        caplog.at_level(logging.ERROR),
        TestClient(create_app(api_settings, authenticator=failing)) as client,
    ):
        assert_error(client.get(SEARCH), 500, "internal_error")
    assert any(r.exc_info for r in caplog.records)


def test_a_failing_shard_fails_the_search_instead_of_hiding_records(
    client: TestClient, os_client: Any, index_records: IndexRecords, index_prefix: str
) -> None:
    index_records([{"action": "LOGIN", "object_repr": "hello"}])
    # A stray index under the prefix whose mapping makes the free-text query fail there. It
    # holds a record of now, so no search in time can skip its shard as holding nothing.
    os_client.indices.create(
        index=f"{index_prefix}-stray",
        body={
            "settings": {"number_of_replicas": 0},
            "mappings": {"properties": {"object_repr": {"type": "ip"},
                                        "timestamp": {"type": "date_nanos"}}},
        },
    )
    os_client.index(index=f"{index_prefix}-stray", refresh="wait_for", body={
        "object_repr": "10.0.0.1", "timestamp": dt.datetime.now(dt.UTC).isoformat()})
    assert client.get(SEARCH, params={"action": "LOGIN"}).json()["count"] == 1
    response = client.get(SEARCH, params={"search_term": "hello"})
    assert_error(response, 500, "internal_error")
