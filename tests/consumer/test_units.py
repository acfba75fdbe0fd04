"""The consumer's pieces on their own: options, duplicate memory, message decoding, batches,
the retry waiter and the retention rule. No services needed."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import uuid
from typing import Any

import pytest
from rstream import AMQPMessage, Properties

from audit_logging.consumer import retention
from audit_logging.consumer.batch import Batch
from audit_logging.consumer.dedup import RecentIds
from audit_logging.consumer.messages import NotARecord, decode
from audit_logging.consumer.options import StartFrom, check_consumer_name, parse_start
from audit_logging.errors import ConfigurationError
from audit_logging.indexer import Refusal
from audit_logging.record import new_log_id, record_to_json
from audit_logging.retry import AbandonedError, Waiter
from tests.consumer._helpers import make_records


def amqp(body: bytes) -> bytes:
    return bytes(AMQPMessage(body=body, properties=Properties(content_type="application/json")))


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first", StartFrom("first")),
        ("LAST", StartFrom("last")),
        ("next", StartFrom("next")),
        ("0", StartFrom("offset", 0)),
        ("123456", StartFrom("offset", 123456)),
        ("2026-01-31T00:00:00Z", StartFrom("timestamp", 1769817600000)),
        ("2026-01-31T01:00:00+01:00", StartFrom("timestamp", 1769817600000)),
    ],
)
def test_from_accepts_the_documented_forms(text: str, expected: StartFrom) -> None:
    assert parse_start(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "must be first, last, next, an offset or an ISO 8601 time"),
        ("-5", "must be first, last, next"),
        ("2026-01-31T00:00:00", "needs a time zone"),
    ],
)
def test_from_refuses_anything_else_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_start(text)
    assert caught.value.setting == "--from"
    assert repr(text) in str(caught.value)


def test_consumer_names_are_checked() -> None:
    assert check_consumer_name("archive-eu.1") == "archive-eu.1"
    for bad in ("", "with space", "x" * 201, "slash/name"):
        with pytest.raises(ConfigurationError, match="--consumer-name"):
            check_consumer_name(bad)


# -- duplicate memory ------------------------------------------------------------------------


def test_recent_ids_report_a_repeat_and_forget_beyond_the_window() -> None:
    recent = RecentIds(window=1000, generation=100)
    ids = [new_log_id() for _ in range(3000)]
    assert all(recent.add(log_id) for log_id in ids)
    assert 1000 <= len(recent) <= 1100
    # The newest thousand are remembered, in and out of frozen generations.
    assert all(not recent.add(log_id) for log_id in ids[-1000:])
    assert all(log_id in recent for log_id in ids[-1000:])
    # The oldest ones are forgotten, so memory stays bounded.
    assert ids[0] not in recent
    assert recent.add(ids[0])


def test_recent_ids_tell_apart_ids_that_share_their_high_half() -> None:
    recent = RecentIds(window=100, generation=10)
    base = uuid.uuid4().int >> 64 << 64
    ids = [str(uuid.UUID(int=base + n)) for n in range(0, 40, 2)]
    for log_id in ids:
        recent.add(log_id)
    assert all(log_id in recent for log_id in ids)
    assert all(str(uuid.UUID(int=base + n)) not in recent for n in range(1, 40, 2))


# -- decoding --------------------------------------------------------------------------------


def test_a_record_decodes_strictly() -> None:
    record = make_records(1)[0]
    body, decoded = decode(amqp(record_to_json(record)))
    assert body == record_to_json(record)
    assert decoded == record


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"hello, not AMQP", "not an AMQP 1.0 message"),
        (bytes(AMQPMessage(value={"action": "CREATE"})), "has an amqp-value section"),
        (amqp(b"not json"), "is not JSON"),
        (amqp(b'{"action": "\xff"}'), "is not valid UTF-8"),
        (amqp(b"[1, 2]"), "must be a JSON object, got list"),
        (amqp(b'{"action": "CREATE", "log_id": "x"}'), "'log_id': must be a UUID"),
        (
            amqp(b'{"action": "CREATE", "timestamp": "2026-01-01T00:00:00Z"}'),
            "'log_id': is required",
        ),
        (amqp(b"{" + b" " * 600_000 + b"}"), "over the 524288 limit"),
    ],
)
def test_what_is_not_a_record_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(NotARecord) as caught:
        decode(raw)
    assert reason in caught.value.reason


# -- batches ---------------------------------------------------------------------------------


def _unsent_since(batch: Batch) -> float | None:
    return batch.unsent_since


def test_a_batch_is_indexed_once_every_record_is_resolved_and_it_is_closed() -> None:
    records = make_records(5)
    batch = Batch(number=1, opened_at=0.0)
    for offset, record in zip(range(10, 15), records, strict=True):
        batch.add_record(offset, record, 1_700_000_000_000, now=float(offset))
    batch.add_duplicate(15, 1_700_000_000_000)
    assert (batch.first_offset, batch.last_offset, batch.messages) == (10, 15, 6)

    start, chunk = batch.take(3, now=20.0)
    assert (start, chunk) == (0, records[:3])
    assert batch.unsent == 2 and _unsent_since(batch) == 20.0
    batch.resolve(start, 3, [Refusal(1, 400, "mapper_parsing_exception: no")], 0.5)
    start, chunk = batch.take(10, now=21.0)
    assert (start, chunk) == (3, records[3:]) and _unsent_since(batch) is None
    batch.resolve(start, 2, [], 0.25)
    assert not batch.indexed.is_set()  # still open: more records may come
    batch.close()
    assert batch.indexed.is_set()
    assert batch.index_seconds == 0.75
    [refused] = batch.refused
    assert refused.offset == 11 and refused.stage == "index"
    assert refused.log_id == records[1]["log_id"]
    assert "HTTP 400" in refused.reason


# -- waiting for a service -------------------------------------------------------------------


def test_the_waiter_reports_the_first_failure_then_every_period_and_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "audit_logging.consumer")
    waiter = Waiter(
        "OpenSearch", threading.Event(), initial=0.001, maximum=0.001, report_every=0.05
    )
    for _ in range(3):
        waiter.failed("connection refused")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "waiting for OpenSearch: connection refused; the batch is kept and the offset not advanced"
    ]
    threading.Event().wait(0.06)
    waiter.failed("connection refused")
    assert caplog.records[-1].getMessage().startswith("still waiting for OpenSearch after 0 s")
    waiter.succeeded()
    assert "OpenSearch answers again after" in caplog.records[-1].getMessage()


def test_the_waiter_gives_up_only_when_shutdown_abandons() -> None:
    abandon = threading.Event()
    waiter = Waiter("S3", abandon, initial=0.001)
    waiter.failed("down")
    abandon.set()
    with pytest.raises(AbandonedError, match="S3"):
        waiter.failed("down")


def test_a_waiter_with_a_limit_gives_up_once_failing_for_that_long(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "audit_logging.archive")
    patient = Waiter("OpenSearch", initial=0.001, give_up_after=3600.0)
    for _ in range(3):
        patient.failed("connection refused")
    assert patient.attempts == 3
    log = logging.getLogger("audit_logging.archive")
    waiter = Waiter("OpenSearch", initial=0.001, give_up_after=0.0, log=log,
                    meanwhile="the records are sent again when it answers")
    with pytest.raises(AbandonedError, match=r"OpenSearch after \d+ s \(connection refused\)"):
        waiter.failed("connection refused")
    assert [(r.name, r.getMessage()) for r in caplog.records][-1] == (
        "audit_logging.archive",
        "waiting for OpenSearch: connection refused; the records are sent again when it answers",
    )


def test_a_coroutine_pauses_on_the_event_loop_and_wakes_when_its_event_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "audit_logging.consumer")
    waiter = Waiter("RabbitMQ", initial=3600.0, maximum=3600.0)

    async def pause_until_stopped() -> int:
        stopping = asyncio.Event()
        pausing = asyncio.create_task(waiter.pause("connection refused", stopping))
        await asyncio.sleep(0)
        threads = threading.active_count()
        stopping.set()
        # An hour's back-off, ended by the event: never by its delay, never in a thread.
        await asyncio.wait_for(pausing, 60)
        return threads

    threads_while_pausing = asyncio.run(pause_until_stopped())
    assert threads_while_pausing == threading.active_count()
    assert waiter.attempts == 1
    assert caplog.records[-1].getMessage().startswith("waiting for RabbitMQ: connection refused")


# -- retention -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "deleted"),
    [
        ("logs-2025.01", True),  # 14 months before March 2026
        ("logs-2025.02", True),  # 13
        ("logs-2025.03", False),  # 12: still within the last 12 months
        ("logs-2025.04", False),  # 11
        ("logs-2026.03", False),
        ("logs-archive", False),
        ("logs-eu-2020.01", False),
        ("other-2020.01", False),
    ],
)
def test_retention_goes_by_the_month_in_the_index_name(index: str, deleted: bool) -> None:
    assert retention.expired("logs", index, 12, dt.date(2026, 3, 31)) is deleted


class _FakeIndices:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, index: str, params: dict[str, str]) -> None:
        self.deleted.append(index)


class _FakeCat:
    def indices(self, index: str, params: dict[str, str]) -> list[dict[str, Any]]:
        assert index == "logs-*"
        names = ["logs-2024.12", "logs-2025.06", "logs-archive", "logs-2025.01"]
        return [{"index": name} for name in names]


class _FakeClient:
    def __init__(self) -> None:
        self.cat = _FakeCat()
        self.indices = _FakeIndices()


def test_retention_deletes_expired_indices_one_exact_name_at_a_time() -> None:
    client = _FakeClient()
    deleted = retention.delete_expired(client, "logs", 12, dt.date(2026, 3, 1))  # type: ignore[arg-type]
    assert deleted == client.indices.deleted == ["logs-2024.12", "logs-2025.01"]
