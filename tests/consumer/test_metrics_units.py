"""The consumer's metrics without services: what a batch, a retry and a scrape do to them,
what /readyz says for each state, and the flags."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from audit_logging.consumer import __main__ as consumer_main
from audit_logging.consumer.archiver import ArchiveStats
from audit_logging.consumer.batch import Batch
from audit_logging.consumer.dead_letter import DeadLetter
from audit_logging.consumer.health import DependencyDown, Probe
from audit_logging.consumer.lag import lag_of
from audit_logging.consumer.metrics import NO_METRICS, PrometheusRecorder, reason_label
from audit_logging.consumer.monitor import Monitor
from audit_logging.consumer.options import ConsumerOptions
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings
from tests.consumer._helpers import make_records

ENV = {"AUDIT_LOG_AWS_S3_BUCKET": "unit-bucket", "AUDIT_LOG_FLUSH_INTERVAL": "7"}


def letter(offset: int, code: str, stage: str = "decode") -> DeadLetter:
    return DeadLetter(offset, stage, "why", b"body", 1_700_000_000_000, code=code)  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_batch_counts_archived_duplicates_dead_letters_by_reason_and_its_duration() -> None:
    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry, 7.0)
    batch = Batch(number=1, opened_at=0.0)
    records = make_records(3)
    for offset, record in enumerate(records):
        batch.add_record(offset, record, 1_700_000_000_000 + offset, 0.0)
    batch.add_duplicate(3, 1_700_000_000_003)
    letters = [letter(4, "not_json"), letter(5, "not_json"), letter(6, "", "archive")]
    recorder.batch_done("s-0", batch, ArchiveStats(files=1, written=3), letters, 0.25)
    assert value(registry, "audit_logging_consumer_records_archived_total", stream="s-0") == 3
    assert value(registry, "audit_logging_consumer_duplicates_dropped_total", stream="s-0") == 1
    dead = "audit_logging_consumer_records_dead_lettered_total"
    assert value(registry, dead, stream="s-0", reason="not_json") == 2
    assert value(registry, dead, stream="s-0", reason="archive") == 1
    assert value(registry, "audit_logging_consumer_batch_duration_seconds_count") == 1
    assert value(registry, "audit_logging_consumer_batch_duration_seconds_sum") == 0.25
    archived_at = value(
        registry, "audit_logging_consumer_last_archive_timestamp_seconds", stream="s-0"
    )
    assert archived_at is not None and archived_at > 1_700_000_000
    assert value(registry, "audit_logging_consumer_flush_interval_seconds") == 7


def test_a_dead_letter_reason_never_comes_from_message_content() -> None:
    assert reason_label(letter(1, "duplicate_log_id", "dedup")) == "duplicate_log_id"
    assert reason_label(letter(1, "", "index")) == "index"
    for odd in ("Not JSON", "x" * 41, "a{b}", "naïve", "1abc", 'a"b'):
        assert reason_label(letter(1, odd)) == "other", odd


def test_retries_by_sink_start_at_zero_and_count_each_failed_attempt() -> None:
    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry, 60.0)
    for sink in ("broker", "opensearch", "s3"):
        assert value(registry, "audit_logging_consumer_retries_total", sink=sink) == 0
    recorder.retry("s3")
    recorder.retry("s3")
    recorder.bulk_seconds(0.01)
    recorder.s3_put_seconds(0.2)
    recorder.indexed("s-0", 5)
    assert value(registry, "audit_logging_consumer_retries_total", sink="s3") == 2
    assert value(registry, "audit_logging_consumer_bulk_duration_seconds_count") == 1
    assert value(registry, "audit_logging_consumer_s3_put_duration_seconds_count") == 1
    assert value(registry, "audit_logging_consumer_records_indexed_total", stream="s-0") == 5


def test_without_metrics_the_hooks_do_nothing() -> None:
    assert NO_METRICS.enabled is False
    NO_METRICS.retry("broker")
    NO_METRICS.indexed("s", 1)


@pytest.mark.parametrize(
    ("end", "processed", "lag"),
    [(None, None, 0), (None, 10, 0), (9, None, 10), (9, 9, 0), (9, 12, 0), (150, 99, 51)],
)
def test_lag_in_messages(end: int | None, processed: int | None, lag: int) -> None:
    assert lag_of(end, processed) == lag


# -- the monitor -----------------------------------------------------------------------------


@dataclasses.dataclass
class FakeService:
    stream: str
    active: bool = True
    connected: bool = True
    consumed: int = 0
    stored: int | None = None
    committed: int | None = None

    def oldest_unprocessed_timestamp(self) -> float | None:
        return None


class Switch:
    def __init__(self) -> None:
        self.problem: str | None = None

    def check(self) -> None:
        if self.problem is not None:
            raise DependencyDown(self.problem)


@pytest.fixture
def switches() -> dict[str, Switch]:
    return {"opensearch": Switch(), "s3": Switch()}


@pytest.fixture
def monitor(switches: dict[str, Switch]) -> Iterator[tuple[Monitor, list[bool]]]:
    settings = Settings.load(environ=ENV, env_file=None)
    stopping = [False]
    probes = {name: Probe(name, switch.check) for name, switch in switches.items()}
    built = Monitor(settings, ConsumerOptions(metrics_port=0), lambda: stopping[0], probes=probes)
    yield built, stopping
    asyncio.run(built.close())


def check_probes(monitor: Monitor) -> None:
    for probe in monitor._probes.values():
        probe.check_now()


def test_ready_when_connected_active_or_standby_and_both_sinks_answer(
    monitor: tuple[Monitor, list[bool]],
) -> None:
    watched, _ = monitor
    watched.attach([FakeService("p-0"), FakeService("p-1", active=False)], watch_lag=False)
    check_probes(watched)
    assert watched.readiness() == (
        True,
        {
            "status": "ready",
            "dependencies": {"broker": True, "opensearch": True, "s3": True},
            "partitions": {"p-0": "active", "p-1": "standby"},
            "problems": [],
        },
    )


def test_not_ready_says_why(
    monitor: tuple[Monitor, list[bool]], switches: dict[str, Switch]
) -> None:
    watched, stopping = monitor
    assert watched.readiness()[1]["problems"] == [
        "starting: waiting for the broker",
        "opensearch: not checked yet",
        "s3: not checked yet",
    ]
    watched.attach([FakeService("p-0", connected=False, active=False)], watch_lag=False)
    switches["s3"].problem = "ConnectTimeoutError"
    check_probes(watched)
    stopping[0] = True
    ready, document = watched.readiness()
    assert not ready
    assert document["status"] == "not ready"
    assert document["dependencies"] == {"broker": False, "opensearch": True, "s3": False}
    assert document["partitions"] == {"p-0": "standby"}
    assert document["problems"] == [
        "stopping",
        "broker: not subscribed to p-0",
        "s3: ConnectTimeoutError",
    ]


def test_a_scrape_brings_the_services_counts_into_the_metrics_once(
    monitor: tuple[Monitor, list[bool]],
) -> None:
    watched, _ = monitor
    service = FakeService("p-0", consumed=40, stored=39)
    watched.attach([service, FakeService("p-1", active=False)], watch_lag=False)
    check_probes(watched)
    registry = watched.registry
    watched.sync()
    watched.sync()
    consumed = "audit_logging_consumer_records_consumed_total"
    assert value(registry, consumed, stream="p-0") == 40
    assert value(registry, consumed, stream="p-1") == 0
    service.consumed, service.stored, service.active = 55, 54, False
    watched.sync()
    assert value(registry, consumed, stream="p-0") == 55
    assert value(registry, "audit_logging_consumer_stored_offset", stream="p-0") == 54
    assert value(registry, "audit_logging_consumer_active", stream="p-0") == 0
    assert value(registry, "audit_logging_consumer_active", stream="p-1") == 0
    for name in ("broker", "opensearch", "s3"):
        assert value(registry, "audit_logging_consumer_dependency_up", dependency=name) == 1


def test_the_endpoints_over_http(monitor: tuple[Monitor, list[bool]]) -> None:
    watched, _ = monitor
    watched.attach([FakeService("p-0", consumed=3)], watch_lag=False)
    watched.start()
    base = f"http://127.0.0.1:{watched.port}"
    check_probes(watched)
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
        assert json.loads(answer.read())["status"] == "ready"
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert 'audit_logging_consumer_records_consumed_total{stream="p-0"} 3.0' in text
    watched.attach([FakeService("p-0", connected=False)], watch_lag=False)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/readyz", timeout=5)
    assert refused.value.code == 503
    assert json.loads(refused.value.read())["dependencies"]["broker"] is False


def test_a_taken_port_is_a_settings_error_naming_the_flag() -> None:
    settings = Settings.load(environ=ENV, env_file=None)
    taken = Monitor(settings, ConsumerOptions(metrics_port=0), lambda: False)
    try:
        with pytest.raises(ConfigurationError, match="--metrics-port / --metrics-host"):
            Monitor(settings, ConsumerOptions(metrics_port=taken.port), lambda: False)
    finally:
        asyncio.run(taken.close())


# -- the flags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "0"], "--metrics-port: must be a TCP port from 1 to 65535, got '0'"),
        (["--metrics-port", "65536"], "--metrics-port: must be a TCP port from 1 to 65535"),
        (["--metrics-port", "http"], "--metrics-port: must be a TCP port from 1 to 65535"),
        (["--metrics-port", "-1"], "--metrics-port: must be a TCP port from 1 to 65535"),
        (
            ["--metrics-port", "9100", "--metrics-host", "bad host"],
            "--metrics-host: must be an IP address or a host name, got 'bad host'",
        ),
        (["--metrics-port", "9100", "--metrics-host", ""], "--metrics-host: must be"),
    ],
)
def test_bad_metrics_flags_exit_2_naming_the_flag(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert consumer_main.main(args, ENV) == 2
    assert message in capsys.readouterr().err


def test_metrics_flags_reach_the_options() -> None:
    args = consumer_main.build_parser().parse_args(
        ["--metrics-port", "9464", "--metrics-host", "::"]
    )
    _, options = consumer_main._load(args, ENV)
    assert (options.metrics_port, options.metrics_host) == (9464, "::")
    _, default = consumer_main._load(consumer_main.build_parser().parse_args([]), ENV)
    assert (default.metrics_port, default.metrics_host) == (None, "127.0.0.1")


def test_metrics_port_without_the_extra_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert consumer_main.main(["--metrics-port", "9464"], ENV) == 2
    err = capsys.readouterr().err
    assert "needs the 'prometheus-client' package" in err
    assert "audit-logging-pipeline[metrics]" in err
