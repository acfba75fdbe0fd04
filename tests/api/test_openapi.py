"""The OpenAPI document matches what the app enforces, and schemathesis finds no 5xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from starlette.applications import Starlette
from starlette.testclient import TestClient

from audit_logging.api.cursor import Cursor, encode_cursor
from audit_logging.api.params import DETAIL_PARAMETERS, SEARCH_PARAMETERS
from audit_logging.api.query import SUMMARY_FIELDS
from audit_logging.record import FIELDS
from tests.api.conftest import IndexRecords

pytestmark = pytest.mark.services

OPENAPI = "/api/audit-logs/openapi.json"


def test_document_needs_a_token_and_describes_both_routes(client: TestClient) -> None:
    assert client.get(OPENAPI, headers={"Authorization": ""}).status_code == 401
    response = client.get(OPENAPI)
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.0")
    search = doc["paths"]["/api/audit-logs/search/"]["get"]
    assert [p["name"] for p in search["parameters"]] == list(SEARCH_PARAMETERS)
    assert all(p["description"] for p in search["parameters"])
    assert set(search["responses"]) == {"200", "400", "401", "503"}
    detail = doc["paths"]["/api/audit-logs/detail/{log_id}/"]["get"]
    assert [p["name"] for p in detail["parameters"]] == ["log_id", *DETAIL_PARAMETERS]
    assert set(detail["responses"]) == {"200", "400", "401", "404", "503"}
    schemas = doc["components"]["schemas"]
    assert list(schemas["Record"]["properties"]) == list(FIELDS)
    assert list(schemas["Summary"]["properties"]) == list(SUMMARY_FIELDS)
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_document_lists_the_probes_and_metrics_as_the_app_serves_them(
    app: Starlette, client: TestClient
) -> None:
    doc = client.get(OPENAPI).json()
    served = {route.path for route in app.routes}  # type: ignore[attr-defined]
    assert set(doc["paths"]) == served
    assert {"/healthz", "/readyz", "/metrics"} <= served
    for probe in ("/healthz", "/readyz"):
        assert doc["paths"][probe]["get"]["security"] == []  # no token
    metrics = doc["paths"]["/metrics"]["get"]
    assert "security" not in metrics  # the document's default: a Bearer token
    assert "AUDIT_LOG_METRICS_NETWORKS" in metrics["description"]
    assert set(metrics["responses"]) == {"200", "400", "401", "501"}
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "400", "503"}


def test_document_says_cursor_and_from_offset_exclude_each_other(client: TestClient) -> None:
    doc = client.get(OPENAPI).json()
    search = doc["paths"]["/api/audit-logs/search/"]["get"]
    params = {p["name"]: p for p in search["parameters"]}
    for name, other in (("cursor", "from_offset"), ("from_offset", "cursor")):
        description = params[name]["description"]
        assert f"Excludes {other}" in description and "400" in description, description
    assert "cursor and from_offset exclude each other" in search["description"]
    ref = search["responses"]["400"]["$ref"].removeprefix("#/components/responses/")
    bad = doc["components"]["responses"][ref]
    assert "cursor and from_offset together" in bad["description"]
    # The documented example is what the API answers to both together, in either order.
    example = bad["content"]["application/json"]["examples"]["cursorWithFromOffset"]["value"]
    cursor = encode_cursor(Cursor(1_767_268_800_000_000_000, str(uuid.uuid4()), 40))
    for query in (f"cursor={cursor}&from_offset=0", f"from_offset=20&cursor={cursor}"):
        response = client.get(f"/api/audit-logs/search/?{query}")
        assert response.status_code == 400
        assert response.json() == example


@pytest.fixture
def api_schema(app: Starlette, token: str, index_records: IndexRecords) -> Iterator[Any]:
    index_records(
        [
            {"action": "CREATE", "user_id": "u1", "object_repr": "Jöhn 日本", "ip_address": "::1"},
            {"action": "DELETE", "object_type": "Customer", "change_message": "a:b OR ("},
        ]
    )
    schema = schemathesis.openapi.from_asgi(
        OPENAPI, app, headers={"Authorization": f"Bearer {token}"}
    )

    # Registered on the schema (not passed to each call) so that schemathesis leaves the
    # token out of the negative cases that test a missing or broken Authorization header.
    @schema.auth(refresh_interval=None)
    class Bearer:
        def get(self, case: Any, context: Any) -> str:
            return token

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    yield schema
    # Schemathesis keeps the app's lifespan running for reuse; end it while the test's
    # index still exists, so the app's OpenSearch client is closed here, not at exit.
    asgi.shutdown_lifespans()


# Schemathesis' own pytest loader (schemathesis.pytest.from_fixture) sets Function._nodeid,
# which pytest 9 no longer has; its Hypothesis strategy API needs no pytest integration.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error_or_schema_violation(
    api_schema: Any, mode: GenerationMode
) -> None:
    @given(case=api_schema.as_strategy(mode))
    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        # Every check but one: a schema-valid request may still be a 400 here, because
        # OpenAPI cannot express start_time <= end_time, from_offset + page_size <= 10,000,
        # or that a cursor must be one the API issued.
        case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])

    run()
