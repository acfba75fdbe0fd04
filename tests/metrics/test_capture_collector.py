"""The capture side's counts and the collector that exports them, without a broker: a
publisher pointed at a port nothing listens on spools everything, which moves the counts
and gauges a broker fault moves. (Against the real broker, scraped over HTTP:
tests/handlers/test_metrics_over_http.py.)

The collector sums every publisher of the process, other tests' too: the tests look at what
changes, never at totals."""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import prometheus_client
import pytest

from audit_logging import _capture_stats
from audit_logging._capture_stats import LATENCY_BOUNDS, REJECT_REASONS, ConfirmLatency
from audit_logging._link import Link
from audit_logging._outbox import Outbox
from audit_logging._spool import Spool
from audit_logging.handlers import AuditHandler
from audit_logging.metrics.capture import capture_collector, register_capture_metrics
from audit_logging.metrics.catalogue import FAST_BUCKETS, METRICS
from audit_logging.settings import Settings
from tests._ports import free_port
from tests.handlers._records import audit_record, emit_records

REPO = Path(__file__).resolve().parents[2]
CAPTURE_METRICS = [m for m in METRICS if m.side == "capture"]


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    registry = prometheus_client.CollectorRegistry()
    registry.register(capture_collector())
    return registry


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[AuditHandler]:
    """A handler whose broker is a port nothing listens on: every record is spooled."""
    settings = Settings.load(
        env_file=None, rabbitmq_stream_port=free_port(), spool_dir=tmp_path / "spool"
    )
    handler = AuditHandler(settings=settings)
    yield handler
    handler.close(timeout=0.5)


def value(registry: prometheus_client.CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"no sample {name}{labels}"
    return found


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached within the deadline"
        time.sleep(0.05)


def test_the_latency_buckets_are_the_catalogues() -> None:
    assert LATENCY_BOUNDS == FAST_BUCKETS


def test_every_capture_metric_of_the_catalogue_is_exported_as_described(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    families = {family.name: family for family in registry.collect()}
    exported = {
        name + ("_total" if family.type == "counter" else ""): family
        for name, family in families.items()
    }
    assert sorted(exported) == sorted(m.name for m in CAPTURE_METRICS)
    for metric in CAPTURE_METRICS:
        family = exported[metric.name]
        assert family.type == metric.kind, metric.name
        assert family.documentation == metric.help
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(metric.labels), sample
    rejected = families["audit_logging_capture_records_rejected"]
    reasons = {s.labels["reason"] for s in rejected.samples if s.name.endswith("_total")}
    assert reasons == set(REJECT_REASONS)


def test_a_latency_on_a_bound_falls_in_that_bucket() -> None:
    latency = ConfirmLatency()
    latency.observe(0.005, 3)
    latency.observe(0.0051)
    latency.observe(60.0)
    assert latency.buckets[LATENCY_BOUNDS.index(0.005)] == 3
    assert latency.buckets[LATENCY_BOUNDS.index(0.01)] == 1
    assert latency.buckets[-1] == 1  # +Inf
    assert latency.sum == pytest.approx(0.015 + 0.0051 + 60.0)


def _no_report(kind: str, level: int, message: str, *args: object) -> None:
    return None


class _Producer:
    def __init__(self) -> None:
        self.frames: list[list[int]] = []

    async def send_batch(self, stream: str, messages: list[Any], **_: Any) -> None:
        self.frames.append([m.publishing_id for m in messages])


def test_confirms_are_timed_once_per_frame_for_all_its_records(tmp_path: Path) -> None:
    counts: collections.Counter[str] = collections.Counter()
    outbox = Outbox(bytes, 1000, _no_report, counts)
    link = Link(Settings.load(env_file=None), outbox, _no_report,
                wake=lambda: None, stop_requested=lambda: False)
    link.producer = producer = _Producer()
    records = [(pid, b'{"log_id":"%d"}' % pid) for pid in range(1, 301)]
    link.direct.update(records)
    started = time.monotonic()
    asyncio.run(link.send(records))
    assert [len(frame) for frame in producer.frames] == [250, 50]
    for pid in range(1, 301):
        link.on_confirm(SimpleNamespace(message_id=pid, is_confirmed=True))
    took = time.monotonic() - started
    assert counts["published"] == 300
    assert counts["replayed"] == 0
    assert sum(outbox.latency.buckets) == 300
    # Each record weighs its frame's time from send to confirm: within the test's own span.
    assert 0 < outbox.latency.sum <= 300 * took
    assert not link.frames_sent


def test_spooled_records_confirmed_later_count_as_replayed_once(tmp_path: Path) -> None:
    counts: collections.Counter[str] = collections.Counter()
    outbox = Outbox(bytes, 1000, _no_report, counts)
    spool = outbox.spool = Spool.create(tmp_path)
    try:
        spool.append([(1, b"{}"), (2, b"{}"), (3, b"{}")])
        spool.sync()
        link = Link(Settings.load(env_file=None), outbox, _no_report,
                    wake=lambda: None, stop_requested=lambda: False)
        link.producer = _Producer()
        asyncio.run(link.send_from_spool())
        for pid in (1, 2):  # a stream confirms in order; the connection drops before 3's
            link.on_confirm(SimpleNamespace(message_id=pid, is_confirmed=True))
        asyncio.run(link.disconnect("cut"))  # 3 is sent again (1 and 2 are committed)
        link.producer = producer = _Producer()
        asyncio.run(link.send_from_spool())
        assert producer.frames == [[3]]
        link.on_confirm(SimpleNamespace(message_id=3, is_confirmed=True))
        assert counts["replayed"] == counts["published"] == 3
        # The first frame's last record was never confirmed: only the resend is timed.
        assert sum(outbox.latency.buckets) == 1
    finally:
        spool.close(remove_if_empty=True)


def test_a_frame_never_confirmed_is_not_timed(tmp_path: Path) -> None:
    outbox = Outbox(bytes, 1000, _no_report, collections.Counter())
    link = Link(Settings.load(env_file=None), outbox, _no_report,
                wake=lambda: None, stop_requested=lambda: False)
    link.producer = _Producer()
    records = [(1, b"{}"), (2, b"{}")]
    link.direct.update(records)
    asyncio.run(link.send(records))
    asyncio.run(link.disconnect("cut"))  # the records go to the spool (none here: lost)
    assert not link.frames_sent
    assert sum(outbox.latency.buckets) == 0


def test_rejections_are_counted_by_a_fixed_reason(
    registry: prometheus_client.CollectorRegistry, unreachable: AuditHandler
) -> None:
    before = {r: value(registry, "audit_logging_capture_records_rejected_total", reason=r)
              for r in REJECT_REASONS}
    no_action = logging.LogRecord("audit", logging.INFO, __file__, 1, "m", None, None)
    unreachable.emit(no_action)
    blank_action = audit_record("1")
    blank_action.action = "   "  # the record cannot be built: refused on the publisher's thread
    unreachable.emit(blank_action)
    emit_records(unreachable, 0, 5)

    def moved() -> dict[str, float]:
        return {r: value(registry, "audit_logging_capture_records_rejected_total", reason=r)
                - before[r] for r in REJECT_REASONS}

    wait_until(lambda: moved()["invalid"] == 1)
    assert moved() == {"no_action": 1, "invalid": 1, "unstorable": 0, "encode_error": 0}
    stats = unreachable.stats()
    assert stats["rejected"] == 1  # the publisher's own count: the one it was given
    wait_until(lambda: unreachable.stats()["accepted"] == 6)


def test_an_encode_failure_is_counted_as_encode_error() -> None:
    def broken(item: Any) -> bytes:
        raise TypeError("not JSON")

    before = _capture_stats.snapshot().rejected["encode_error"]
    outbox = Outbox(broken, 10, _no_report, collections.Counter())
    outbox.queue.extend([{"a": 1}, {"a": 2}])
    assert outbox.take() == []
    assert outbox.counts["accepted"] == 2
    assert outbox.counts["rejected"] == 2
    assert _capture_stats.snapshot().rejected["encode_error"] - before == 2


def test_an_unreachable_broker_shows_in_the_gauges_and_counts(
    registry: prometheus_client.CollectorRegistry, unreachable: AuditHandler
) -> None:
    spooled = value(registry, "audit_logging_capture_records_spooled_total")
    accepted = value(registry, "audit_logging_capture_records_accepted_total")
    emit_records(unreachable, 0, 40)
    wait_until(lambda: unreachable.stats()["spooled"] == 40)
    assert value(registry, "audit_logging_capture_records_spooled_total") - spooled == 40
    assert value(registry, "audit_logging_capture_records_accepted_total") - accepted == 40
    assert value(registry, "audit_logging_capture_broker_connected") == 0
    assert value(registry, "audit_logging_capture_spool_records") >= 40
    spool = unreachable.transport._outbox.spool  # type: ignore[attr-defined]
    on_disk = sum(p.stat().st_size for p in spool.path.glob("*.log"))
    assert on_disk > 40 * 50
    assert value(registry, "audit_logging_capture_spool_bytes") >= on_disk


def _spool_and_close(tmp_path: Path) -> tuple[weakref.ref[Any], dict[str, int]]:
    """A publisher that spooled 7 records and was closed; the counts before it closed."""
    settings = Settings.load(
        env_file=None, rabbitmq_stream_port=free_port(), spool_dir=tmp_path / "spool"
    )
    handler = AuditHandler(settings=settings)
    emit_records(handler, 0, 7)
    wait_until(lambda: handler.stats()["spooled"] == 7)
    before = _capture_stats.snapshot().counts
    handler.close(timeout=0.5)
    return weakref.ref(handler.transport), before


def test_a_collected_publisher_leaves_its_counts(tmp_path: Path) -> None:
    publisher, before = _spool_and_close(tmp_path)
    deadline = time.monotonic() + 10
    while publisher() is not None:  # its thread ends after close, then nothing holds it
        assert time.monotonic() < deadline, gc.get_referrers(publisher())
        gc.collect()
        time.sleep(0.05)
    after = _capture_stats.snapshot().counts
    # Had its counts left with it, "spooled" would have gone down by 7.
    assert after["spooled"] >= before["spooled"]
    assert after["accepted"] >= before["accepted"]


FORK = """
import json, os, time
from audit_logging import _capture_stats
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from tests.handlers._records import emit_records
handler = AuditHandler(settings=Settings.load(
    env_file=None, rabbitmq_stream_port={port}, spool_dir={spool!r}))
emit_records(handler, 0, 5)
deadline = time.monotonic() + 10
while handler.stats()["spooled"] < 5 and time.monotonic() < deadline:
    time.sleep(0.05)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    counts = _capture_stats.snapshot().counts
    os.write(write, json.dumps(counts).encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
child = json.loads(os.read(read, 65536))
print(json.dumps({{"parent": _capture_stats.snapshot().counts, "child": child}}))
handler.close(timeout=0.5)
"""


def test_a_forked_child_counts_from_zero(tmp_path: Path) -> None:
    script = textwrap.dedent(FORK.format(port=free_port(), spool=str(tmp_path / "spool")))
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["parent"]["spooled"] == 5
    assert seen["parent"]["accepted"] == 5
    assert seen["child"] == dict.fromkeys(_capture_stats.COUNTED, 0)


def test_registering_twice_keeps_one_collector() -> None:
    registry = prometheus_client.CollectorRegistry()
    collector = register_capture_metrics(registry)
    assert register_capture_metrics(registry) is collector
    registry.unregister(collector)
    again = register_capture_metrics(registry)
    assert again is not collector
    assert registry.get_sample_value("audit_logging_capture_records_lost_total") is not None


def test_the_default_registry_serves_the_capture_metrics() -> None:
    collector = register_capture_metrics()
    try:
        assert register_capture_metrics() is collector
        page = prometheus_client.generate_latest().decode()
        assert "audit_logging_capture_records_published_total" in page
    finally:
        prometheus_client.REGISTRY.unregister(collector)


class _Retiring:
    """A publisher as _capture_stats sees it, with counts of its own."""

    open = False

    def gauges(self) -> _capture_stats.Gauges:
        return _capture_stats.Gauges()


def test_a_publisher_collected_during_a_scrape_is_still_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A publisher's counts move from "live" to "retired" when it is collected, on whatever
    thread collects it. A scrape that read the retired counts before the move and the live
    ones after it would miss them: the counter would go down for one scrape (a reset to
    rate()) and up again at the next."""
    holder = [_Retiring()]
    counts: collections.Counter[str] = collections.Counter(accepted=1000, published=1000)
    _capture_stats.track(holder[0], counts, ConfirmLatency())
    before = _capture_stats.snapshot().counts
    read = _capture_stats._read
    collected: list[threading.Thread] = []

    def read_then_collect(which: collections.Counter[str]) -> dict[str, int]:
        found = read(which)
        if which is _capture_stats._retired_counts and not collected:
            # Another thread drops the last reference now, right after this read.
            collected.append(threading.Thread(target=holder.clear))
            collected[0].start()
            collected[0].join(0.5)  # done, unless it waits for the scrape to finish
        return found

    monkeypatch.setattr(_capture_stats, "_read", read_then_collect)
    during = _capture_stats.snapshot().counts
    monkeypatch.undo()
    collected[0].join(10)
    assert not holder
    assert during["accepted"] >= before["accepted"]
    assert during["published"] >= before["published"]
    assert _capture_stats.snapshot().counts["accepted"] >= before["accepted"]
