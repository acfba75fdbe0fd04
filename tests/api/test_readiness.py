"""/readyz and the metrics under faults: OpenSearch or S3 cut or hung through a TCP proxy (the
shared services themselves are never touched). Within 10 s /readyz says 503 naming the
dependency, and the matching metric has moved, scraped over HTTP; both come back when the
dependency does. A hung dependency never hangs /readyz."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.api.readiness import Probe
from audit_logging.settings import Settings
from tests._proxy import TcpProxy, tcp_proxy
from tests.api._scrape import scrape, value
from tests.api.conftest import IndexRecords

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"
REQUESTS = "audit_logging_api_requests_total"
BACKEND = "audit_logging_api_backend_duration_seconds"
WITHIN = 10.0


def answers(client: TestClient, path: str, status: int) -> Any:
    """The first answer of ``path`` with ``status``, asked again until WITHIN seconds have
    passed (each answer must come back: a hung /readyz fails here, it never waits)."""
    deadline = time.monotonic() + WITHIN
    while True:
        response = client.get(path)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, (
            f"{path} still answers {response.status_code} after {WITHIN:g} s: {response.text}"
        )
        time.sleep(0.2)


@pytest.fixture
def opensearch_proxy(api_settings: Settings) -> Iterator[TcpProxy]:
    with tcp_proxy(api_settings.opensearch_host, api_settings.opensearch_port) as proxy:
        yield proxy


@pytest.fixture
def through_proxy(
    api_settings: Settings, opensearch_proxy: TcpProxy, token: str
) -> Iterator[TestClient]:
    """The API reading OpenSearch through the proxy (S3 directly), with short timeouts so a
    search while OpenSearch is cut answers quickly."""
    settings = dataclasses.replace(
        api_settings, opensearch_host="127.0.0.1", opensearch_port=opensearch_proxy.port
    )
    app = create_app(settings, opensearch_timeout=2.0, archive_timeout=5.0)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_opensearch_down_is_503_on_readyz_and_counted_then_ready_again(
    through_proxy: TestClient, opensearch_proxy: TcpProxy, index_records: IndexRecords
) -> None:
    client = through_proxy
    index_records([{"action": "CREATE"}])
    assert answers(client, "/readyz", 200).json()["checks"] == {"opensearch": "ok", "s3": "ok"}
    assert client.get(SEARCH).status_code == 200

    opensearch_proxy.down()
    ready = answers(client, "/readyz", 503)
    assert ready.json() == {"status": "unavailable",
                            "checks": {"opensearch": "unreachable", "s3": "ok"}}
    assert ready.headers["retry-after"] == "5"
    assert client.get("/healthz").status_code == 200  # liveness asks nothing of OpenSearch
    assert client.get(SEARCH).status_code == 503
    samples = scrape(client)  # /metrics needs no OpenSearch
    assert value(samples, REQUESTS, route=SEARCH, status="503") == 1
    assert value(samples, REQUESTS, route="/readyz", status="503") >= 1
    assert value(samples, f"{BACKEND}_count", backend="opensearch") == 2

    opensearch_proxy.up()
    assert answers(client, "/readyz", 200).json()["status"] == "ready"
    assert client.get(SEARCH).status_code == 200
    assert value(scrape(client), REQUESTS, route=SEARCH, status="200") == 2


def test_opensearch_hung_is_503_on_readyz_within_the_bound_then_ready_again(
    through_proxy: TestClient, opensearch_proxy: TcpProxy
) -> None:
    client = through_proxy
    assert answers(client, "/readyz", 200).status_code == 200
    opensearch_proxy.hang()
    ready = answers(client, "/readyz", 503)
    assert ready.json()["checks"]["opensearch"] in ("timeout", "unreachable")
    assert ready.json()["checks"]["s3"] == "ok"
    # A flood of /readyz while it hangs: each answered, none stacking a new check.
    for _ in range(20):
        assert client.get("/readyz").status_code == 503
    opensearch_proxy.forward()
    assert answers(client, "/readyz", 200).json()["checks"]["opensearch"] == "ok"


@pytest.fixture
def s3_proxy(api_settings: Settings) -> Iterator[TcpProxy]:
    assert api_settings.aws_endpoint_url_s3 is not None
    endpoint = urlsplit(api_settings.aws_endpoint_url_s3)
    assert endpoint.hostname is not None and endpoint.port is not None
    with tcp_proxy(endpoint.hostname, endpoint.port) as proxy:
        yield proxy


@pytest.fixture
def archive_through_proxy(
    api_settings: Settings, s3_proxy: TcpProxy, token: str
) -> Iterator[TestClient]:
    settings = dataclasses.replace(api_settings, aws_endpoint_url_s3=s3_proxy.url)
    app = create_app(settings, archive_timeout=5.0)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_s3_down_is_503_on_readyz_and_the_archive_read_is_timed_then_ready_again(
    archive_through_proxy: TestClient, s3_proxy: TcpProxy, index_records: IndexRecords
) -> None:
    client = archive_through_proxy
    index_records([{"action": "CREATE"}])
    assert answers(client, "/readyz", 200).json()["checks"] == {"opensearch": "ok", "s3": "ok"}

    s3_proxy.down()
    ready = answers(client, "/readyz", 503)
    assert ready.json() == {"status": "unavailable",
                            "checks": {"opensearch": "ok", "s3": "unreachable"}}
    # A search reaching into the archive: the index's part answers, the archive's failed
    # read is timed all the same.
    answer = client.get(SEARCH, params={"start_time": "2000-01-01"})
    assert answer.status_code == 200 and answer.json()["tiers"] == ["index"]
    assert any("could not be read" in note for note in answer.json()["notices"])
    samples = scrape(client)
    assert value(samples, f"{BACKEND}_count", backend="archive") == 1
    assert value(samples, REQUESTS, route="/readyz", status="503") >= 1

    s3_proxy.up()
    assert answers(client, "/readyz", 200).json()["checks"]["s3"] == "ok"
    answer = client.get(SEARCH, params={"start_time": "2000-01-01"})
    assert answer.json()["tiers"] == ["index", "archive"]


def test_s3_hung_is_503_on_readyz_within_the_bound_then_ready_again(
    archive_through_proxy: TestClient, s3_proxy: TcpProxy
) -> None:
    client = archive_through_proxy
    assert answers(client, "/readyz", 200).status_code == 200
    s3_proxy.hang()
    ready = answers(client, "/readyz", 503)
    assert ready.json()["checks"] == {"opensearch": "ok", "s3": ready.json()["checks"]["s3"]}
    assert ready.json()["checks"]["s3"] in ("timeout", "unreachable")
    for _ in range(20):
        assert client.get("/readyz").status_code == 503
    s3_proxy.forward()
    assert answers(client, "/readyz", 200).json()["checks"]["s3"] == "ok"


def test_without_an_archive_readyz_checks_opensearch_alone(
    api_settings: Settings, token: str
) -> None:
    app = create_app(dataclasses.replace(api_settings, s3_bucket=None))
    with TestClient(app) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"opensearch": "ok"}}


def test_readyz_answers_nothing_but_fixed_words(api_settings: Settings) -> None:
    """No error text, host, port or credential in the answer, whatever failed."""
    settings = dataclasses.replace(
        api_settings, opensearch_host="127.0.0.1", opensearch_port=1,
        aws_endpoint_url_s3="http://127.0.0.1:1",
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable",
                            "checks": {"opensearch": "unreachable", "s3": "unreachable"}}


# -- the probe's bounds, on a fake dependency (the real ones are above) ----------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(probe: Probe, times: int = 1) -> list[str]:
    import asyncio

    async def states() -> list[str]:
        return [await probe.state() for _ in range(times)]

    return asyncio.run(states())


def counting(action: Callable[[], Any]) -> tuple[list[int], Callable[[], Any]]:
    calls = [0]

    async def check() -> None:
        calls[0] += 1
        await action()

    return calls, check


def test_a_probe_reuses_a_fresh_answer_and_asks_again_once_it_is_stale() -> None:
    import asyncio

    calls, check = counting(lambda: asyncio.sleep(0))
    clock = Clock()
    probe = Probe("fake", check, seconds=1.0, fresh=1.0, clock=clock)

    async def scenario() -> list[str]:
        first = [await probe.state() for _ in range(5)]
        clock.now = 1.5
        return [*first, await probe.state()]

    assert asyncio.run(scenario()) == ["ok"] * 6
    assert calls == [2]


def test_a_hung_check_answers_timeout_and_is_never_stacked() -> None:
    import asyncio

    calls, check = counting(lambda: asyncio.sleep(3600))
    probe = Probe("fake", check, seconds=0.05, fresh=0.0)

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(probe.state() for _ in range(10))))

    assert asyncio.run(scenario()) == ["timeout"] * 10
    assert calls == [1]
