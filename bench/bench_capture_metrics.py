"""What exporting the capture metrics costs the app: the same ``AuditHandler`` (to the real
local RabbitMQ) with its metrics served by prometheus-client's HTTP server and scraped every
second by a thread, against no metrics at all, in alternating rounds of the same run.

* per call: ``logger.info`` calls at an app's pace (4,000 calls/s for 5 s a round, so each
  "on" round sees about five scrapes); the mean per call, as calls/s of one app thread
  (goal >= 0.97x: metrics must be nearly free), with p50 and p99 beside it;
* CPU per record: the whole process's user + system CPU (app thread, publisher thread,
  HTTP server and scraper) from the first call until the broker confirmed the last record,
  divided by the records (goal <= 1.03x).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import prometheus_client

from audit_logging.handlers.handler import AuditHandler
from audit_logging.metrics.capture import capture_collector
from audit_logging.settings import Settings
from bench._results import Result, median, percentile
from bench.bench_capture import WARMUP, _delete_stream, _drain, _extras, _logger, _paced

AREA: Final = "capture_metrics"
CALLS: Final = 20_000
SECONDS: Final = 5.0
ROUNDS: Final = 9  # each way: CPU per record varies by several % from round to round
SCRAPE_EVERY: Final = 1.0
SCRAPES_TIMED: Final = 100


@dataclasses.dataclass
class _Tally:
    mean: list[float] = dataclasses.field(default_factory=list)  # µs per call
    p50: list[float] = dataclasses.field(default_factory=list)
    p99: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)  # µs per record
    scrapes: list[int] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _scraped(registry: Any) -> Iterator[list[int]]:
    """prometheus-client's HTTP server on ``registry``, fetched every SCRAPE_EVERY s by a
    thread; yields a one-item list with the number of scrapes made."""
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    stop = threading.Event()
    done = [0]

    def scrape() -> None:
        while not stop.wait(SCRAPE_EVERY):
            with urllib.request.urlopen(url, timeout=5) as response:
                page = response.read()
            if b"audit_logging_capture_records_published_total" not in page:
                raise RuntimeError("bench capture_metrics: the page has no capture metrics")
            done[0] += 1

    scraper = threading.Thread(target=scrape, name="bench-scraper", daemon=True)
    scraper.start()
    try:
        yield done
    finally:
        stop.set()
        scraper.join()
        server.shutdown()
        server.server_close()
        thread.join()


def _scrape_cpu(registry: Any) -> float:
    """CPU seconds of one scrape (server and client, in this process), the app idle."""
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        for _ in range(10):
            urllib.request.urlopen(url, timeout=5).close()
        began = time.process_time()
        for _ in range(SCRAPES_TIMED):
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        return (time.process_time() - began) / SCRAPES_TIMED
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _round(handler: AuditHandler, logger: Any, extras: list[dict[str, Any]], tally: _Tally,
           registry: Any | None) -> None:
    with contextlib.ExitStack() as stack:
        scrapes = stack.enter_context(_scraped(registry)) if registry is not None else [0]
        cpu = time.process_time()
        samples = _paced(logger, extras, SECONDS)
        _drain(handler)
        cpu = time.process_time() - cpu
    tally.mean.append(statistics.fmean(samples) / 1000)
    tally.p50.append(percentile(samples, 50) / 1000)
    tally.p99.append(percentile(samples, 99) / 1000)
    tally.cpu.append(cpu * 1e6 / len(extras))
    tally.scrapes.append(scrapes[0])


def measure(settings: Settings) -> tuple[_Tally, _Tally, float]:
    extras = _extras(CALLS)
    registry = prometheus_client.CollectorRegistry()
    registry.register(capture_collector())
    off, on = _Tally(), _Tally()
    handler = AuditHandler(settings=settings)
    try:
        logger = _logger("metrics", handler)
        _paced(logger, extras[:WARMUP], 0.5)
        _drain(handler)
        scrape_cpu = _scrape_cpu(registry)
        for round_ in range(ROUNDS):
            # Alternate which goes first: the broker's state drifts over a run.
            order = [(off, None), (on, registry)]
            for tally, exported in order if round_ % 2 == 0 else order[::-1]:
                _round(handler, logger, extras, tally, exported)
    finally:
        handler.close(30.0)
    return off, on, scrape_cpu


def _rounds(values: list[float]) -> str:
    return "/".join(f"{v:.3g}" for v in values)


def run(settings: Settings) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-capture-metrics-spool-") as spool:
        own = dataclasses.replace(
            settings,
            rabbitmq_stream_name=f"bench-capture-metrics-{uuid.uuid4().hex[:8]}",
            spool_dir=Path(spool),
        )
        try:
            off, on, scrape_cpu = measure(own)
        finally:
            _delete_stream(own)
    how = (f"median of {ROUNDS} alternating rounds each way of {CALLS:,} calls over "
           f"{SECONDS:g} s; on: scraped over HTTP every {SCRAPE_EVERY:g} s "
           f"({_rounds([float(s) for s in on.scrapes])} scrapes a round)")
    on_rate, off_rate = 1e6 / median(on.mean), 1e6 / median(off.mean)
    on_cpu, off_cpu = median(on.cpu), median(off.cpu)
    return [
        Result(
            AREA, "capture calls/s of one app thread (1 / mean per call), metrics on vs off",
            on_rate, off_rate, "calls/s", ">= 0.97x", on_rate >= 0.97 * off_rate,
            f"{how}; mean µs per call on {_rounds(on.mean)}, off {_rounds(off.mean)}",
        ),
        Result(
            AREA, "p50 per call, metrics on vs off", median(on.p50), median(off.p50), "µs",
            "-", None, f"rounds on {_rounds(on.p50)}, off {_rounds(off.p50)}",
        ),
        Result(
            AREA, "p99 per call, metrics on vs off", median(on.p99), median(off.p99), "µs",
            "-", None, f"rounds on {_rounds(on.p99)}, off {_rounds(off.p99)}",
        ),
        Result(
            AREA, "process CPU per record, metrics on vs off", on_cpu, off_cpu, "µs/record",
            "<= 1.03x", on_cpu <= 1.03 * off_cpu,
            f"user + system CPU of the whole process from the first call until the broker "
            f"confirmed the last; rounds on {_rounds(on.cpu)}, off {_rounds(off.cpu)}; one "
            f"scrape alone costs {scrape_cpu * 1e3:.2g} ms of CPU (server and client), "
            f"{scrape_cpu * 1e6 * median(on.scrapes) / CALLS:.2g} µs a record at this pace",
        ),
    ]
