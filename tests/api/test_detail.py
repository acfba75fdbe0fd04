"""GET /api/audit-logs/detail/<log_id>/ against the real OpenSearch."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

from audit_logging.record import FIELDS
from tests.api.conftest import IndexRecords

pytestmark = pytest.mark.services


def detail(log_id: str) -> str:
    return f"/api/audit-logs/detail/{log_id}/"


FULL = {
    "timestamp": "2026-05-06T07:08:09.123456Z",
    "action": "UPDATE",
    "user_id": "user_123",
    "username": "Jöhn Doe",
    "object_type": "Customer",
    "object_id": "cus_456",
    "object_repr": "J" * 2000,  # over its 1,024 limit: truncated, and listed in "truncated"
    "change_message": "Changed email and plan",
    "changes": {"email": ["a@example.com", "b@example.com"], "plan": [None, "pro"]},
    "ip_address": "2001:db8::7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "session_key": "hmac-sha256:" + "ab" * 32,
    "request_id": "req-789",
    "source": "billing-service",
    "extra": {"nested": {"list": [1, 2.5, "three", True, None]}, "日本": "語"},
}


def test_detail_returns_every_field_of_the_record(
    client: TestClient, index_records: IndexRecords
) -> None:
    (record,) = index_records([FULL])
    assert record["truncated"] == ["object_repr"]
    response = client.get(detail(record["log_id"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert tuple(body) == FIELDS
    assert body == record
    assert response.headers["cache-control"] == "no-store"


def test_detail_of_a_sparse_record_has_every_field_with_nulls(
    client: TestClient, index_records: IndexRecords
) -> None:
    (record,) = index_records([{"action": "LOGIN"}])
    body = client.get(detail(record["log_id"])).json()
    assert tuple(body) == FIELDS
    assert body["action"] == "LOGIN"
    assert body["changes"] is None and body["ip_address"] is None and body["truncated"] == []


def test_detail_id_is_case_insensitive(client: TestClient, index_records: IndexRecords) -> None:
    (record,) = index_records([{"action": "LOGIN"}])
    response = client.get(detail(record["log_id"].upper()))
    assert response.status_code == 200
    assert response.json()["log_id"] == record["log_id"]


def test_unknown_or_malformed_id_is_404(client: TestClient, index_records: IndexRecords) -> None:
    index_records([{"action": "LOGIN"}])
    for log_id in [
        str(uuid.uuid4()),  # well-formed, unknown
        "123",
        "not-a-uuid",
        "0190d2a45b6c7d8e9f00112233445566",  # no dashes
        "0190d2a4-5b6c-7d8e-9f00-11223344556g",
        "%2e%2e",
        "*",
        "0190d2a4-5b6c-7d8e-9f00-112233445566%20",
        "%F0%9F%98%80",
    ]:
        response = client.get(detail(log_id))
        assert response.status_code == 404, log_id
        error = response.json()["error"]
        assert error["code"] == "not_found", log_id
        assert set(error) == {"code", "message", "field"}


def test_detail_takes_no_query_parameters(client: TestClient, index_records: IndexRecords) -> None:
    (record,) = index_records([{"action": "LOGIN"}])
    response = client.get(detail(record["log_id"]), params={"fields": "all"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "fields"
