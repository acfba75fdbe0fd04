"""Every search and detail read is itself an audit record, on the "audit" logger."""

from __future__ import annotations

import logging
import uuid

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import Capture, IndexRecords

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"


def fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        name: getattr(record, name, None)
        for name in ("action", "user_id", "username", "object_type", "object_id", "extra")
    }


def test_search_is_audited_with_the_caller_and_the_filters(
    client: TestClient, index_records: IndexRecords, audit_capture: Capture
) -> None:
    index_records([{"action": "CREATE", "user_id": "u1"}, {"action": "CREATE", "user_id": "u2"}])
    response = client.get(
        SEARCH,
        params={
            "action": "CREATE",
            "start_time": "2020-01-01",
            "search_term": "x y",
            "page_size": 5,
            "ip_address": "10.1.2.3/8",
        },
    )
    assert response.status_code == 200
    (record,) = audit_capture.records
    assert record.name == "audit" and record.levelno == logging.INFO
    got = fields(record)
    assert got["action"] == "SEARCH"
    assert str(got["user_id"]).startswith("api-token:")
    assert got["username"] == "API token " + str(got["user_id"]).removeprefix("api-token:")
    assert got["object_type"] == "AuditLog"
    assert got["object_id"] is None
    assert got["extra"] == {
        "filters": {
            "action": "CREATE",
            "start_time": "2020-01-01T00:00:00.000000Z",
            "search_term": "x y",
            "ip_address": "10.0.0.0/8",
        },
        "page_size": 5,
        "from_offset": 0,
        "count": 0,
        "returned": 0,
        # From 2020: past the index's retention, so the archive was read too.
        "tiers": ["index", "archive"],
    }
    assert "SEARCH" not in record.getMessage() and "0 matches" in record.getMessage()


def test_view_is_audited_with_the_log_id_found_or_not(
    client: TestClient, index_records: IndexRecords, audit_capture: Capture
) -> None:
    (target,) = index_records([{"action": "DELETE"}])
    missing = str(uuid.uuid4())
    assert client.get(f"/api/audit-logs/detail/{target['log_id']}/").status_code == 200
    assert client.get(f"/api/audit-logs/detail/{missing}/").status_code == 404
    found, not_found = (fields(record) for record in audit_capture.records)
    assert found["action"] == not_found["action"] == "VIEW"
    assert found["object_type"] == not_found["object_type"] == "AuditLog"
    assert found["object_id"] == target["log_id"]
    assert found["extra"] == {"found": True, "tiers": ["index"]}
    assert not_found["object_id"] == missing
    assert not_found["extra"] == {"found": False, "tiers": ["index", "archive"]}
    assert str(found["user_id"]).startswith("api-token:")


def test_refused_requests_are_not_reads(
    client: TestClient, index_records: IndexRecords, audit_capture: Capture
) -> None:
    index_records([{"action": "DELETE"}])
    assert client.get(SEARCH, params={"page_size": 0}).status_code == 400
    assert (
        client.get(SEARCH, headers={"Authorization": "Bearer wrong-token-000000"}).status_code
        == 401
    )
    assert client.get("/api/audit-logs/detail/nope/").status_code == 404
    assert audit_capture.records == []
