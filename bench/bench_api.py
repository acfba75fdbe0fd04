"""Query API latency at 1,000,000 records: a filtered free-text search through the API
against the same query sent straight to OpenSearch, interleaved in the same run; and the cost
of the API's Prometheus metrics: the same requests to a server keeping them and to one started
with ``--no-metrics``, interleaved.

The records live under their own prefix (``bench-api``) and are kept between runs: a rerun
reuses them when the prefix already holds exactly 1,000,000 records with today's mapping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, Final

import httpx
from opensearchpy import OpenSearch, helpers

from audit_logging.api.params import parse_search
from audit_logging.api.query import SEARCH_FILTER_PATH, search_body, search_indices
from audit_logging.record import build_record
from audit_logging.search_index import (
    MAPPINGS,
    index_for,
    index_pattern,
    install_template,
    make_client,
)
from audit_logging.settings import Settings
from bench._results import Result, median, percentile

PREFIX: Final = "bench-api"
RECORDS: Final = 1_000_000
MONTHS: Final = 6  # 2026-01 .. 2026-06, one index each
WARMUP: Final = 50
SAMPLES: Final = 500
P99_GOAL_MS: Final = 50.0
OVERHEAD_GOAL: Final = 1.3
METRICS_GOAL: Final = 0.97  # throughput with metrics over throughput without
CHEAP_SAMPLES: Final = 3000
# Pairs of servers started for the comparison, each pair started in the other order: two
# processes of the same code differ by a few per cent (where the OS puts them), as much as
# the metrics may cost, so one pair alone would measure its luck.
METRICS_ROUNDS: Final = 4

_ACTIONS = ["UPDATE"] * 50 + ["CREATE"] * 20 + ["VIEW"] * 15 + ["DELETE"] * 5 + ["LOGIN"] * 8
_ACTIONS += ["EXPORT"] * 2
_TYPES = ["Customer", "Invoice", "Order", "Subscription", "Payment", "User", "Product", "Refund"]
_FIRST = ["John", "Jane", "Jöhn", "Maria", "Wei", "Aiko", "Omar", "Lena", "Carlos", "Priya"]
_LAST = ["Smith", "Doe", "Müller", "García", "Tanaka", "Chen", "Okafor", "Rossi", "Novak"]
_FIELDS = ["email", "plan", "address", "status", "amount", "currency", "phone", "name"]
_VERBS = {
    "UPDATE": "Changed {f} and {g}",
    "CREATE": "Created new {t}",
    "VIEW": "Viewed {t} details",
    "DELETE": "Deleted {t} after request",
    "LOGIN": "Logged in with password",
    "EXPORT": "Exported {t} list as CSV",
}
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "python-requests/2.32",
]


def _records(count: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(20261126)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    span = (dt.datetime(2026, 7, 1, tzinfo=dt.UTC).timestamp() - start) - 1
    for _ in range(count):
        action = rng.choice(_ACTIONS)
        kind = rng.choice(_TYPES)
        user = rng.randrange(5000)
        f, g = rng.sample(_FIELDS, 2)
        yield build_record(
            {
                "timestamp": dt.datetime.fromtimestamp(start + rng.random() * span, dt.UTC),
                "action": action,
                "user_id": f"user_{user}",
                "username": f"{_FIRST[user % 10].lower()}.{_LAST[user % 9].lower()}{user}",
                "object_type": kind,
                "object_id": f"{kind[:3].lower()}_{rng.randrange(200_000)}",
                "object_repr": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                "change_message": _VERBS[action].format(f=f, g=g, t=kind.lower()),
                "changes": {f: ["old", "new"]} if action == "UPDATE" else None,
                "ip_address": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}",
                "user_agent": rng.choice(_AGENTS),
                "request_id": f"req-{rng.getrandbits(48):012x}",
                "source": "bench",
            }
        )


def _ready(client: OpenSearch) -> bool:
    pattern = index_pattern(PREFIX)
    if not client.indices.exists(index=pattern, allow_no_indices=False):
        return False
    if client.count(index=pattern)["count"] != RECORDS:
        return False
    mappings = client.indices.get_mapping(index=pattern)
    return all(
        m["mappings"]["properties"].get("timestamp") == MAPPINGS["properties"]["timestamp"]
        for m in mappings.values()
    )


def _load(client: OpenSearch) -> float:
    """Index RECORDS records afresh; returns the seconds it took."""
    started = time.perf_counter()
    client.indices.delete(index=index_pattern(PREFIX), ignore_unavailable=True)
    install_template(client, PREFIX)
    indices = [index_for(PREFIX, dt.datetime(2026, m, 1, tzinfo=dt.UTC)) for m in range(1, 7)]
    for index in indices:
        # No refreshes while loading: one at the end is far cheaper.
        client.indices.create(
            index=index, body={"settings": {"refresh_interval": "-1", "number_of_replicas": 0}}
        )
    actions = (
        {"_index": index_for(PREFIX, r["timestamp"]), "_id": r["log_id"], "_source": r}
        for r in _records(RECORDS)
    )
    results = helpers.parallel_bulk(client, actions, thread_count=2, chunk_size=5000, queue_size=4)
    for done, (ok, item) in enumerate(results, start=1):
        if not ok:
            raise RuntimeError(f"bench indexing failed: {item}")
        if done % 100_000 == 0:
            print(f"bench api: indexed {done:,} records", flush=True)
    for index in indices:
        client.indices.put_settings(index=index, body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=index_pattern(PREFIX))
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serve(settings: Settings, token: str, *args: str) -> Iterator[str]:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "OPENSEARCH_HOST": settings.opensearch_host,
        "OPENSEARCH_PORT": str(settings.opensearch_port),
        "OPENSEARCH_INDEX_PREFIX": PREFIX,
        "AUDIT_LOG_API_TOKENS": token,
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "audit_logging.api", "--port", str(port)),
            *("--env-file", os.devnull, "--log-level", "warning", *args),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("bench: the API server exited at start")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("bench: the API server did not answer within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def _queries(count: int) -> list[dict[str, str]]:
    """Filtered free-text searches that vary, so no single cached answer is timed."""
    rng = random.Random(7)
    words = ["email", "plan", "address", "status", "amount", "new", "details", "password"]
    queries = []
    for _ in range(count):
        month = rng.randrange(1, 7)
        queries.append(
            {
                "action": rng.choice(["UPDATE", "CREATE", "VIEW"]),
                "object_type": rng.choice(_TYPES),
                "start_time": f"2026-{month:02d}-01T00:00:00Z",
                "end_time": f"2026-{month:02d}-{rng.randrange(10, 28)}T12:00:00Z",
                "search_term": rng.choice(words),
                "page_size": "20",
            }
        )
    return queries


@dataclasses.dataclass
class _Timings:
    api: list[float] = dataclasses.field(default_factory=list)
    direct: list[float] = dataclasses.field(default_factory=list)


def _measure(settings: Settings, base: str, token: str) -> _Timings:
    timings = _Timings()
    search_url = f"{base}/api/audit-logs/search/"
    opensearch = f"http://{settings.opensearch_host}:{settings.opensearch_port}"
    direct_params = {
        "ignore_unavailable": "true",
        "allow_no_indices": "true",
        "allow_partial_search_results": "false",
        "filter_path": SEARCH_FILTER_PATH,
    }
    queries = _queries(WARMUP + SAMPLES)
    # No compression either way: httpx asks for gzip by default, which OpenSearch honours and
    # the API (like its own OpenSearch client) does not, so it would slow the baseline only.
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    with httpx.Client(headers=headers, timeout=30) as client:
        for i, query in enumerate(queries):
            # The very request the API makes: same indices, body and response filter.
            params = parse_search(list(query.items()))
            body = search_body(params, None)
            direct_url = f"{opensearch}/{search_indices(PREFIX, params)}/_search"
            # Interleaved, so drift in the machine's load hits both sides alike.
            t0 = time.perf_counter()
            api = client.get(search_url, params=query)
            t1 = time.perf_counter()
            direct = client.post(direct_url, params=direct_params, json=body)
            t2 = time.perf_counter()
            api.raise_for_status()
            direct.raise_for_status()
            if api.json()["count"] != direct.json()["hits"]["total"]["value"]:
                raise RuntimeError(f"bench: the API and OpenSearch disagree on {query}")
            if i >= WARMUP:
                timings.api.append((t1 - t0) * 1000)
                timings.direct.append((t2 - t1) * 1000)
    return timings


@dataclasses.dataclass
class _Pair:
    on: list[float] = dataclasses.field(default_factory=list)
    off: list[float] = dataclasses.field(default_factory=list)


def _measure_metrics(on: str, off: str, token: str, share: int) -> tuple[_Pair, _Pair]:
    """The same requests to the server keeping metrics (``on``) and to the one without
    (``off``), one after the other, the first of each pair alternating: the searches of the
    latency measure, and a cheap request (authenticated, a 404 asking no backend) where the
    metrics' own cost is the largest share; each ``1/share`` of the samples."""
    searches, cheap = _Pair(), _Pair()
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    cheap_path = "/api/audit-logs/detail/not-a-log-id/"
    with httpx.Client(headers=headers, timeout=30) as client:

        def timed(url: str, params: dict[str, str] | None, status: int) -> float:
            t0 = time.perf_counter()
            response = client.get(url, params=params)
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != status:
                raise RuntimeError(f"bench: {url} answered {response.status_code}")
            return elapsed

        for sink, path, queries, status, warmup in (
            (searches, "/api/audit-logs/search/", _queries(WARMUP + SAMPLES // share), 200, WARMUP),
            (cheap, cheap_path, [None] * (WARMUP + CHEAP_SAMPLES // share), 404, WARMUP),
        ):
            for i, query in enumerate(queries):
                pairs = [(on, sink.on), (off, sink.off)]
                if i % 2:
                    pairs.reverse()  # neither server always goes first
                for base, samples in pairs:
                    elapsed = timed(f"{base}{path}", query, status)
                    if i >= warmup:
                        samples.append(elapsed)
        # The server keeping metrics did keep them.
        scraped = client.get(f"{on}/metrics")
        if "audit_logging_api_requests_total" not in scraped.text:
            raise RuntimeError("bench: the server with metrics exported none")
    return searches, cheap


def _metrics_results(searches: _Pair, cheap: _Pair) -> list[Result]:
    results = []
    for what, pair in (
        (f"searches (as above), {SAMPLES} pairs", searches),
        (f"a cheap request (token checked, 404, no backend), {CHEAP_SAMPLES} pairs", cheap),
    ):
        # Requests a second one client sends back to back, at the median latency.
        on, off = 1000 / median(pair.on), 1000 / median(pair.off)
        mean_ratio = (sum(pair.off) / len(pair.off)) / (sum(pair.on) / len(pair.on))
        results.append(
            Result(
                area="api",
                measure=f"requests/s with metrics vs --no-metrics: {what}",
                ours=on,
                baseline=off,
                unit="req/s",
                goal=f">= {METRICS_GOAL}x",
                met=on >= METRICS_GOAL * off,
                note=(
                    f"{METRICS_ROUNDS} pairs of servers (started in either order), the same "
                    f"requests interleaved (order alternating); median "
                    f"{median(pair.on):.3f} ms with, {median(pair.off):.3f} ms without; "
                    f"ratio of means {mean_ratio:.3f}"
                ),
            )
        )
    return results


def run(settings: Settings) -> list[Result]:
    settings = dataclasses.replace(settings, opensearch_index_prefix=PREFIX)
    client = make_client(settings, timeout=300)  # loading 1,000,000 records takes a while
    try:
        note = "reused the indexed records"
        if not _ready(client):
            seconds = _load(client)
            note = f"indexed in {seconds:.0f} s ({RECORDS / seconds:,.0f} records/s)"
            print(f"bench api: {note}", flush=True)
    finally:
        client.close()
    token = secrets.token_hex(24)
    with _serve(settings, token) as base:
        timings = _measure(settings, base, token)
    searches, cheap = _Pair(), _Pair()
    for round_ in range(METRICS_ROUNDS):
        with contextlib.ExitStack() as servers:
            started = [(), ("--no-metrics",)]
            if round_ % 2:
                started.reverse()
            bases = {a: servers.enter_context(_serve(settings, token, *a)) for a in started}
            got = _measure_metrics(bases[()], bases[("--no-metrics",)], token, METRICS_ROUNDS)
        for total, part in zip((searches, cheap), got, strict=True):
            total.on.extend(part.on)
            total.off.extend(part.off)
    api50, api99 = percentile(timings.api, 50), percentile(timings.api, 99)
    os50, os99 = percentile(timings.direct, 50), percentile(timings.direct, 99)
    query = "action + object_type + time range + search_term, page of 20"
    return [
        Result(
            area="api",
            measure=f"search p50, 1M records ({query})",
            ours=api50,
            baseline=os50,
            unit="ms",
            goal=f"<= {OVERHEAD_GOAL}x",
            met=api50 <= OVERHEAD_GOAL * os50,
            note=(
                f"baseline: the same request straight to OpenSearch, interleaved; API adds "
                f"{api50 - os50:.2f} ms at the median; {SAMPLES} samples; {note}"
            ),
        ),
        Result(
            area="api",
            measure="search p99, 1M records (same queries)",
            ours=api99,
            baseline=os99,
            unit="ms",
            goal=f"<= {P99_GOAL_MS:g} ms",
            met=api99 <= P99_GOAL_MS,
            note="2-core machine: OpenSearch, the API and the client share it",
        ),
        *_metrics_results(searches, cheap),
    ]
