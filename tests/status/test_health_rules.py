"""The rules that call status healthy or not, and how it shows them (screen and --json),
on figures made by hand."""

from __future__ import annotations

import json

import pytest

from audit_logging.status.figures import (
    Archive,
    Backlog,
    Broker,
    ConsumerName,
    DeadLetters,
    Digest,
    Index,
    MonthlyIndex,
    Readiness,
    S3Object,
    Spool,
    Status,
    StreamEnd,
    as_json,
    default_stale_after,
    problems,
)
from audit_logging.status.screen import render, table

NOW = 1_800_000_000.0


def _status(**changes: object) -> Status:
    broker = Broker(
        reachable=True,
        streams=[StreamEnd("audit", end_offset=120, end_time=NOW - 5)],
        consumers=[ConsumerName("audit-logging-consumer", [Backlog("audit", 120, 0)])],
    )
    status = Status(
        checked_at=NOW,
        stale_after=150.0,
        broker=broker,
        readiness=[Readiness("http://c1:9108", reachable=True, http_status=200, ready=True,
                             dependencies={"broker": True, "opensearch": True, "s3": True},
                             partitions={"audit": "active"})],
        archive=Archive("bucket", "audit-logs/", reachable=True,
                        newest_object=S3Object("audit-logs/year=2027/month=01/day=15/"
                                               "audit-00000000000000000000-00000000000000000120"
                                               ".parquet", NOW - 60, 12_345),
                        digests=[Digest("audit", "audit-logs/digest/audit/x.json", NOW - 600, 100)],
                        dead_letters=DeadLetters(objects=2, bytes=2048)),
        index=Index("audit-logs", reachable=True,
                    indices=[MonthlyIndex("audit-logs-2027.01", 121, "green")]),
        spool=Spool("/var/spool/audit", exists=True, records=3, bytes=900),
    )
    for name, value in changes.items():
        setattr(status, name, value)
    status.problems = problems(status)
    return status


def test_all_well_is_healthy() -> None:
    status = _status()
    assert status.problems == []
    assert status.healthy
    assert render(status).endswith("\nhealthy")


def test_the_default_staleness_is_two_flush_intervals_and_a_grace() -> None:
    assert default_stale_after(60.0) == 150.0
    assert default_stale_after(1.0) == 32.0


@pytest.mark.parametrize(("waited", "stale"), [(149.0, False), (151.0, True)])
def test_a_consumer_is_stale_when_its_oldest_record_waits_too_long(
    waited: float, stale: bool
) -> None:
    backlog = Backlog("audit", 100, 20, oldest_waiting_offset=101,
                      oldest_waiting_time=NOW - waited)
    status = _status(broker=Broker(reachable=True,
                                   streams=[StreamEnd("audit", end_offset=120, end_time=NOW)],
                                   consumers=[ConsumerName("billing", [backlog])]))
    assert status.healthy is not stale
    if stale:
        (problem,) = status.problems
        assert "'billing'" in problem and "'audit'" in problem and "offset 101" in problem
        assert "STALE" in render(status)
        assert render(status).splitlines()[-1].startswith("UNHEALTHY: consumer 'billing'")


def test_each_unreachable_service_is_a_problem_and_the_rest_is_still_shown() -> None:
    status = _status(
        broker=Broker(error="localhost:5552: ConnectionRefusedError: refused"),
        archive=Archive("bucket", "p/", error="s3://bucket/p/: HTTP 403 AccessDenied: no"),
        index=Index("audit-logs", error="http://os:9200: ConnectionError: down"),
    )
    assert [problem.split(":")[0] for problem in status.problems] == [
        "RabbitMQ", "S3", "OpenSearch"]
    screen = render(status)
    assert screen.count("unreachable:") == 3
    assert "Local spool (/var/spool/audit)" in screen and "3 records" in screen
    assert "http://c1:9108  ready" in screen


def test_a_missing_stream_and_a_red_index_are_problems() -> None:
    status = _status(
        broker=Broker(reachable=True, streams=[StreamEnd("audit", exists=False)]),
        index=Index("audit-logs", reachable=True,
                    indices=[MonthlyIndex("audit-logs-2027.01", None, "red")]),
    )
    assert status.problems == ["RabbitMQ: stream 'audit' does not exist",
                               "OpenSearch: index audit-logs-2027.01 is red"]


def test_a_consumer_url_unreachable_not_ready_or_odd_is_a_problem() -> None:
    status = _status(readiness=[
        Readiness("http://c1:9108", error="unreachable: ConnectionRefusedError"),
        Readiness("http://c2:9108", reachable=True, http_status=503, ready=False,
                  problems=["opensearch unreachable"]),
        Readiness("http://c3:9108", reachable=True, http_status=200, ready=True,
                  partitions={"audit-0": "standby"}),
    ])
    assert status.problems == [
        "consumer at http://c1:9108: unreachable: ConnectionRefusedError",
        "consumer at http://c2:9108 is not ready: opensearch unreachable",
    ]
    screen = render(status)
    assert "UNREACHABLE" in screen and "NOT READY" in screen and "audit-0 standby" in screen


def test_the_json_holds_every_figure_and_the_problems() -> None:
    status = _status(spool=Spool("/s", exists=True, error="/s: PermissionError: denied"))
    document = json.loads(json.dumps(as_json(status)))
    assert document["healthy"] is False
    assert document["problems"] == ["spool: /s: PermissionError: denied"]
    assert document["broker"]["streams"] == [
        {"stream": "audit", "exists": True, "end_offset": 120,
         "end_time": "2027-01-15T07:59:55Z"}]
    assert document["broker"]["consumers"][0]["streams"][0]["lag"] == 0
    assert "upper bound" in document["broker"]["lag_note"]
    assert document["archive"]["newest_object"]["size"] == 12_345
    assert document["archive"]["digests"][0]["last_offset"] == 100
    assert document["archive"]["dead_letters_last_day"]["objects"] == 2
    assert document["index"]["indices"] == [
        {"index": "audit-logs-2027.01", "documents": 121, "health": "green"}]
    assert document["consumer_urls"][0]["partitions"] == {"audit": "active"}
    assert document["stale_after_seconds"] == 150.0


def test_columns_are_aligned() -> None:
    lines = table([["a", "bb", "c"], ["long cell", "x", "y"]])
    assert lines == ["  a          bb  c", "  long cell  x   y"]
