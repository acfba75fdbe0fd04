"""Every request set in ``metrics_requests/`` against the API and its /metrics, over the real
OpenSearch: each answer is what the file's ``expect`` says and never a 5xx, an error message
is one line of at most 300 characters, and what the requests held never grows the metrics.

A file holds ``path`` (one request; a value or ``{"repeat", "times", "prefix", "suffix"}``),
``paths`` (a list, or ``{"random": n, "prefix", "suffix", "one_segment"}``: n random paths,
the same on every run) or ``path`` with ``methods``; ``headers`` as ``[[name, value], ...]``
(a value's characters up to U+00FF are one byte each, big ones built like paths); ``client``, the
direct peer's address (default: none that is an IP address); ``networks``, the app's
AUDIT_LOG_METRICS_NETWORKS; ``with_token`` to send a valid token; ``secrets``, strings that
must appear in no answer and no scrape. ``expect`` holds ``status``, ``code`` (the error's),
``route`` (the one route label all the requests count under) and ``auth_failure`` (the one
reason each request counts as)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
import string
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.api.auth import FAILURE_REASONS
from audit_logging.api.metrics import UNMATCHED
from audit_logging.api.openapi import OPERATIONS
from audit_logging.settings import Settings
from tests.api._scrape import label_values, scrape, value

pytestmark = pytest.mark.services

FILES = sorted((Path(__file__).parent / "metrics_requests").glob("*.json"))
REQUESTS = "audit_logging_api_requests_total"
AUTH_FAILURES = "audit_logging_api_auth_failures_total"
TEMPLATES = {operation.path for operation in OPERATIONS}
# Characters of a random path segment: anything a client may send, encoded by httpx where
# needed; '?' and '#' would end the path.
_PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%/{}é日"


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 12


def built(spec: str | dict[str, Any]) -> str:
    if isinstance(spec, str):
        return spec
    repeated = str(spec["repeat"]) * int(spec["times"])
    return str(spec.get("prefix", "")) + repeated + str(spec.get("suffix", ""))


def header_bytes(value: str) -> bytes:
    return value.encode("latin-1") if all(ord(c) <= 0xFF for c in value) else value.encode()


def paths_of(case: dict[str, Any], seed: str) -> list[str]:
    if "path" in case:
        return [built(case["path"])]
    paths = case["paths"]
    if isinstance(paths, list):
        return [str(path) for path in paths]
    rng = random.Random(seed)
    # One path segment: no '/', nor '%' that could spell one.
    chars = _PATH_CHARS
    if paths.get("one_segment"):
        chars = chars.replace("/", "").replace("%", "")
    made = []
    for _ in range(int(paths["random"])):
        segment = "".join(rng.choice(chars) for _ in range(rng.randrange(1, 40)))
        made.append(f"{paths.get('prefix', '/')}{segment.lstrip('/')}{paths.get('suffix', '')}")
    return made


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_hostile_metrics_requests(path: Path, api_settings: Settings, token: str) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("why"), f"{path.name}: say why this file is here"
    expect = case["expect"]
    networks = tuple(ipaddress.ip_network(n) for n in case.get("networks", []))
    app = create_app(dataclasses.replace(api_settings, metrics_networks=networks))
    headers = [
        (name.encode("ascii"), header_bytes(built(spec))) for name, spec in case.get("headers", [])
    ]
    if case.get("with_token"):
        headers.append((b"Authorization", f"Bearer {token}".encode()))
    targets = paths_of(case, path.stem)
    methods = case.get("methods", ["GET"])
    peer = (case.get("client", "hostile-peer"), 43210)
    secrets = [*case.get("secrets", []), *(v.decode("latin-1") for _, v in headers if len(v) > 8)]

    sent = 0
    with TestClient(app, client=peer) as client:
        for method in methods:
            for target in targets:
                response = client.request(method, target, headers=headers)
                sent += 1
                assert response.status_code == expect["status"], (method, target, response.text)
                error = response.json()["error"]
                assert error["code"] == expect["code"], error
                message = error["message"]
                assert "\n" not in message and len(message) <= 300, message
                assert not any(s in response.text for s in secrets if s != f"Bearer {token}")
        with TestClient(app) as scraper:
            scraped = scraper.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            samples = scrape(scraper, Authorization=f"Bearer {token}")

    # What the requests held never became a label: routes are the app's templates.
    routes = label_values(samples, REQUESTS, "route")
    assert routes <= TEMPLATES | {UNMATCHED}, routes - TEMPLATES
    assert value(samples, REQUESTS, route=expect["route"], status=str(expect["status"])) == sent
    series = [labels for (name, labels) in samples if name == REQUESTS]
    assert len(series) <= 3, series  # these requests', and the scrapes'
    reasons = label_values(samples, AUTH_FAILURES, "reason")
    assert reasons <= set(FAILURE_REASONS)
    if "auth_failure" in expect:
        assert value(samples, AUTH_FAILURES, reason=expect["auth_failure"]) == sent
    total_failures = sum(value(samples, AUTH_FAILURES, reason=r) for r in FAILURE_REASONS)
    assert total_failures == (sent if expect["status"] == 401 else 0)
    assert not any(s in scraped.text for s in secrets if len(s) >= 8), "a request's value leaked"
    assert len(scraped.content) < 64 * 1024
