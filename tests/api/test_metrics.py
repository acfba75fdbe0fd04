"""The API's /metrics: real requests over the real OpenSearch and S3 move the counters and
histograms, scraped over HTTP through the app as Prometheus would; who may scrape."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from audit_logging._uuid7 import uuid7_str
from audit_logging.api import create_app
from audit_logging.api.auth import FAILURE_REASONS
from audit_logging.api.metrics import UNMATCHED
from audit_logging.metrics.catalogue import METRICS
from audit_logging.settings import Settings
from tests.api._scrape import label_values, parse, scrape, value
from tests.api.conftest import IndexRecords
from tests.api.test_main import environment, serve

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
SEARCH = "/api/audit-logs/search/"
DETAIL = "/api/audit-logs/detail/{log_id}/"
REQUESTS = "audit_logging_api_requests_total"
DURATION = "audit_logging_api_request_duration_seconds"
AUTH_FAILURES = "audit_logging_api_auth_failures_total"
BACKEND = "audit_logging_api_backend_duration_seconds"


def test_every_api_metric_of_the_catalogue_is_exported(client: TestClient) -> None:
    text = client.get("/metrics").text
    for metric in METRICS:
        if metric.side == "api":
            assert f"# HELP {metric.name} {metric.help}" in text
            assert f"# TYPE {metric.name} {metric.kind}" in text


def test_requests_are_counted_by_route_template_and_status(
    client: TestClient, index_records: IndexRecords, token: str
) -> None:
    (record,) = index_records([{"action": "CREATE", "object_id": "o1"}])
    assert client.get(DETAIL.format(log_id=record["log_id"])).status_code == 200
    # A UUID no tier holds: the index is searched, then the archive.
    assert client.get(DETAIL.format(log_id=uuid7_str())).status_code == 404
    assert client.get(SEARCH, params={"object_id": "o1"}).json()["count"] == 1
    assert client.get("/no/such/route").status_code == 404
    assert client.post(SEARCH).status_code == 405
    # Refused before routing (a credential in the URL), counted under its route all the same.
    assert client.get(SEARCH, params={"access_token": "x"}).status_code == 400

    samples = scrape(client)
    assert value(samples, REQUESTS, route=DETAIL, status="200") == 1
    assert value(samples, REQUESTS, route=DETAIL, status="404") == 1
    assert value(samples, REQUESTS, route=SEARCH, status="200") == 1
    assert value(samples, REQUESTS, route=SEARCH, status="405") == 1
    assert value(samples, REQUESTS, route=SEARCH, status="400") == 1
    assert value(samples, REQUESTS, route=UNMATCHED, status="404") == 1
    assert label_values(samples, REQUESTS, "route") == {DETAIL, SEARCH, UNMATCHED}
    assert value(samples, f"{DURATION}_count", route=DETAIL) == 2
    assert value(samples, f"{DURATION}_count", route=SEARCH) == 3
    assert value(samples, f"{DURATION}_bucket", route=DETAIL, le="+Inf") == 2
    assert value(samples, f"{DURATION}_sum", route=DETAIL) > 0
    # Two details and one search read the index; the detail not found there, the archive.
    assert value(samples, f"{BACKEND}_count", backend="opensearch") == 3
    assert value(samples, f"{BACKEND}_count", backend="archive") == 1
    assert value(samples, f"{BACKEND}_sum", backend="archive") > 0

    # The scrape itself is counted once it is answered: the next scrape shows it.
    assert value(scrape(client), REQUESTS, route="/metrics", status="200") == 1


def test_a_search_reaching_into_the_archive_times_both_backends(
    client: TestClient, index_records: IndexRecords
) -> None:
    index_records([{"action": "CREATE"}])
    response = client.get(SEARCH, params={"start_time": "2000-01-01"})
    assert response.status_code == 200 and response.json()["tiers"] == ["index", "archive"]
    samples = scrape(client)
    assert value(samples, f"{BACKEND}_count", backend="opensearch") == 1
    assert value(samples, f"{BACKEND}_count", backend="archive") == 1


def test_auth_failures_are_counted_by_a_fixed_reason(client: TestClient, token: str) -> None:
    for authorization in (None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-the-token-at-all"):
        headers = {"Authorization": authorization} if authorization is not None else {}
        with TestClient(client.app) as anonymous:
            assert anonymous.get(SEARCH, headers=headers).status_code == 401
    samples = scrape(client)
    assert value(samples, AUTH_FAILURES, reason="missing") == 1
    assert value(samples, AUTH_FAILURES, reason="malformed") == 2
    assert value(samples, AUTH_FAILURES, reason="rejected") == 1
    assert label_values(samples, AUTH_FAILURES, "reason") <= set(FAILURE_REASONS)
    assert value(samples, REQUESTS, route=SEARCH, status="401") == 4


def test_metrics_needs_a_token_and_a_refused_scrape_is_counted(
    client: TestClient, token: str
) -> None:
    with TestClient(client.app) as anonymous:
        refused = anonymous.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        wrong = {"Authorization": "Bearer wrong"}
        assert anonymous.get("/metrics", headers=wrong).status_code == 401
    samples = scrape(client, Authorization=f"Bearer {token}")
    assert value(samples, REQUESTS, route="/metrics", status="401") == 2
    assert value(samples, AUTH_FAILURES, reason="missing") == 1
    assert value(samples, AUTH_FAILURES, reason="rejected") == 1


def test_a_listed_network_scrapes_without_a_token_judged_by_the_direct_peer(
    api_settings: Settings,
) -> None:
    settings = dataclasses.replace(
        api_settings,
        metrics_networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
    )
    app = create_app(settings)
    for peer in ("10.1.2.3", "::ffff:10.1.2.3", "fd00::7"):
        with TestClient(app, client=(peer, 41000)) as scraper:
            assert scraper.get("/metrics").status_code == 200, peer
            # The network opens /metrics, nothing else.
            assert scraper.get(SEARCH).status_code == 401
    forged = {"X-Forwarded-For": "10.1.2.3", "Forwarded": "for=10.1.2.3", "X-Real-IP": "10.1.2.3"}
    for peer in ("192.168.1.1", "11.0.0.1", "testclient"):
        with TestClient(app, client=(peer, 41000)) as outsider:
            assert outsider.get("/metrics").status_code == 401, peer
            assert outsider.get("/metrics", headers=forged).status_code == 401, peer


def test_a_server_scraped_from_a_listed_network_and_refusing_a_forged_one(
    stack_settings: Settings, index_prefix: str, token: str, tmp_path: Path
) -> None:
    none = str(tmp_path / "none.env")
    base_env = environment(
        stack_settings, AUDIT_LOG_API_TOKENS=token, OPENSEARCH_INDEX_PREFIX=index_prefix
    )
    listed = base_env | {"AUDIT_LOG_METRICS_NETWORKS": "127.0.0.0/8"}
    with serve(listed, "--env-file", none) as (base, _):
        response = httpx.get(f"{base}/metrics", timeout=10)
        assert response.status_code == 200
        assert f"{REQUESTS}" in response.text
    # A server behind a proxy it trusts still judges /metrics by the direct peer.
    elsewhere = base_env | {"AUDIT_LOG_METRICS_NETWORKS": "10.0.0.0/8"}
    with serve(elsewhere, "--env-file", none, "--trusted-proxy", "127.0.0.1") as (base, _):
        forged = {"X-Forwarded-For": "10.9.9.9"}
        assert httpx.get(f"{base}/metrics", headers=forged, timeout=10).status_code == 401
        with_token = {"Authorization": f"Bearer {token}"}
        samples = parse(httpx.get(f"{base}/metrics", headers=with_token, timeout=10).text)
        assert value(samples, REQUESTS, route="/metrics", status="401") == 1


def test_a_bad_metrics_network_stops_the_server_naming_the_setting(
    stack_settings: Settings, tmp_path: Path
) -> None:
    env = environment(stack_settings, AUDIT_LOG_API_TOKENS="t" * 32,
                      AUDIT_LOG_METRICS_NETWORKS="10.0.0.1/8")
    result = subprocess.run(
        [sys.executable, "-m", "audit_logging.api", "--env-file", str(tmp_path / "none.env")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "AUDIT_LOG_METRICS_NETWORKS" in result.stderr and "10.0.0.1/8" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_turned_off_answers_501_and_the_api_runs(
    api_settings: Settings, token: str
) -> None:
    app = create_app(api_settings, metrics=False)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get(SEARCH).status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 501
    assert response.json()["error"]["code"] == "metrics_unavailable"
    assert "turned off" in response.json()["error"]["message"]


def test_without_the_metrics_extra_the_api_runs_and_metrics_names_the_extra(
    api_settings: Settings, token: str
) -> None:
    """In a process where prometheus_client cannot be imported, as after
    ``pip install 'audit-logging-pipeline[api]'`` alone."""
    script = textwrap.dedent(
        f"""
        import dataclasses, json, sys
        sys.modules["prometheus_client"] = None  # import fails as if not installed
        from starlette.testclient import TestClient
        from audit_logging.api import create_app
        from audit_logging.settings import Secret, Settings
        settings = dataclasses.replace(
            Settings.load(env_file={str(REPO / "devstack" / "local.env")!r}),
            opensearch_index_prefix={api_settings.opensearch_index_prefix!r},
            api_tokens=Secret({token!r}),
        )
        app = create_app(settings)
        with TestClient(app, headers={{"Authorization": "Bearer {token}"}}) as client:
            answers = {{path: (r.status_code, r.json()) for path in
                       ("/api/audit-logs/search/", "/metrics", "/readyz", "/healthz")
                       for r in [client.get(path)]}}
        print(json.dumps(answers))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["/api/audit-logs/search/"][0] == 200
    assert answers["/healthz"] == [200, {"status": "alive"}]
    assert answers["/readyz"][0] == 200
    status, body = answers["/metrics"]
    assert status == 501
    assert body["error"]["code"] == "metrics_unavailable"
    assert "audit-logging-pipeline[metrics]" in body["error"]["message"]
    assert "prometheus-client" in body["error"]["message"]
