"""What ``--metrics-port`` costs the consumer: end-to-end throughput and CPU per record with
the metrics on (and scraped every second: ``/metrics`` and ``/readyz``, as Prometheus and a
readiness probe would) against the same consumer with them off, in alternating rounds over
the same records in the same run (goal >= 0.97x).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import statistics
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Final

import psutil

from audit_logging.record import record_to_json
from audit_logging.settings import Settings
from bench._results import Result
from bench._stack import LOCAL_ENV, ConsumerProcess, log_time, remove_sinks
from bench.bench_consumer import publish, realistic_records, scratch

ROOT: Final = Path(__file__).resolve().parents[1]
RECORDS: Final = 50_000
BATCH: Final = 5000
ROUNDS: Final = 5
SCRAPE_EVERY: Final = 1.0


@dataclasses.dataclass(frozen=True)
class _Run:
    records_per_s: float
    cpu_us_per_record: float
    scrapes: int


class _Scraper(threading.Thread):
    """GET /metrics and /readyz every second; counts the answers."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(SCRAPE_EVERY):
            for path in ("/metrics", "/readyz"):
                try:
                    url = f"http://127.0.0.1:{self.port}{path}"
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        answer.read()
                        self.answers += 1
                except OSError:
                    pass  # starting, or 503 while it connects: the next one counts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _consume(settings: Settings, count: int, metrics: bool) -> _Run:
    """One consumer name reading the whole stream into sinks of its own."""
    tag = uuid.uuid4().hex[:8]
    own = dataclasses.replace(
        settings,
        opensearch_index_prefix=f"{settings.opensearch_index_prefix}-{tag}",
        s3_prefix=f"{settings.s3_prefix}{tag}/",
    )
    args = ["--batch-size", str(BATCH), "--flush-interval", "5"]
    scraper = None
    if metrics:
        port = _free_port()
        args += ["--metrics-port", str(port)]
        scraper = _Scraper(port)
    # This tree's consumer, whichever one the environment has installed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    name = f"bench-metrics-{tag}"
    consumer = ConsumerProcess(own, *args, name=name, env={"PYTHONPATH": path})
    if scraper is not None:
        scraper.start()
    try:
        consumer.wait_for_offset(own, count - 1, 600)
        cpu = psutil.Process(consumer.proc.pid).cpu_times()
    finally:
        if scraper is not None:
            scraper.stopping.set()
        consumer.stop()
    lines = consumer.log().splitlines()
    began = log_time(next(line for line in lines if "starting from" in line))
    ended = log_time([line for line in lines if re.search(r" batch \d+: ", line)][-1])
    remove_sinks(own, own.opensearch_index_prefix)
    return _Run(
        count / (ended - began),
        (cpu.user + cpu.system) * 1e6 / count,
        0 if scraper is None else scraper.answers,
    )


def run(settings: Settings) -> list[Result]:
    runs: dict[bool, list[_Run]] = {False: [], True: []}
    with scratch(settings, "met") as own:
        records = realistic_records(RECORDS, 4)
        publish(own, [record_to_json(r) for r in records])
        for round_ in range(ROUNDS):
            print(f"bench consumer_metrics: round {round_ + 1} of {ROUNDS} ...", flush=True)
            # Alternating which goes first, so neither always runs on a warmer stack.
            for metrics in (False, True) if round_ % 2 == 0 else (True, False):
                runs[metrics].append(_consume(own, RECORDS, metrics))
    off = statistics.median(r.records_per_s for r in runs[False])
    on = statistics.median(r.records_per_s for r in runs[True])
    off_cpu = statistics.median(r.cpu_us_per_record for r in runs[False])
    on_cpu = statistics.median(r.cpu_us_per_record for r in runs[True])
    scrapes = min(r.scrapes for r in runs[True])

    def rounds(metrics: bool, cpu: bool = False) -> str:
        return "/".join(
            f"{r.cpu_us_per_record:,.0f}" if cpu else f"{r.records_per_s:,.0f}"
            for r in runs[metrics]
        )

    return [
        Result(
            area="consumer_metrics",
            measure="consumer throughput with --metrics-port, scraped every second",
            ours=on,
            baseline=off,
            unit="records/s",
            goal=">= 0.97x",
            met=on >= 0.97 * off,
            note=f"baseline: the same consumer without --metrics-port over the same "
            f"{RECORDS:,} records; medians of {ROUNDS} alternating rounds, batches of {BATCH}; "
            f"/metrics and /readyz answered {scrapes}+ times per run; rounds on "
            f"{rounds(True)}, off {rounds(False)}",
        ),
        Result(
            area="consumer_metrics",
            measure="consumer CPU per record with --metrics-port, scraped every second",
            ours=on_cpu,
            baseline=off_cpu,
            unit="µs/record",
            goal="-",
            met=None,
            note="the consumer process's user + system CPU from its start until the last "
            "offset is stored, divided by the records: it includes the fixed cost of "
            "importing prometheus-client and making the probes' clients (~0.3 s) and the "
            f"endpoint and probe threads; rounds on {rounds(True, True)}, "
            f"off {rounds(False, True)}",
        ),
    ]


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(json.dumps(dataclasses.asdict(result)))
