"""One message into the batch or a dead letter, whatever it holds (issue 8, items 1 and 2):
the messages that used to crash the consumer, unexpected errors of any per-record step, and
the duplicate memory telling a resend from a reused log_id. No services needed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rstream import AMQPMessage, Properties

from audit_logging.archive import parquet
from audit_logging.consumer import admit
from audit_logging.consumer.admit import Admission
from audit_logging.consumer.dead_letter import DeadLetter, failure
from audit_logging.consumer.dedup import RecentIds
from audit_logging.record import new_log_id, record_to_json
from tests.consumer._helpers import make_records


def amqp(body: bytes) -> bytes:
    return bytes(AMQPMessage(body=body, properties=Properties(content_type="application/json")))


def _fields(**changes: Any) -> bytes:
    record = make_records(1)[0]
    record.update(changes)
    return json.dumps(record).encode()


def _admission() -> Admission:
    return Admission(RecentIds(1000), "logs")


CRASHERS = {
    "nested 1,000 deep": _fields(extra="DEEP").replace(
        b'"DEEP"', b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"
    ),
    "nested 1,000 deep at the top": b'{"x":' * 1000 + b"1" + b"}" * 1000,
    "log_id with a trailing newline": _fields(log_id=new_log_id() + "\n"),
    "year 9999 west of UTC": _fields(timestamp="9999-12-31T23:59:59-01:00"),
    "year 1 east of UTC": _fields(timestamp="0001-01-01T00:00:00+01:00"),
}


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_what_crashed_the_consumer_is_a_dead_letter(name: str) -> None:
    admission = _admission()
    outcome = admission.admit(amqp(CRASHERS[name]), 7, 1_700_000_000_000)
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.offset == 7 and outcome.stage == "decode"
    assert outcome.body == CRASHERS[name]
    # And the warm-up after a restart skips it instead of raising.
    admission.warm(amqp(CRASHERS[name]))


def test_an_unexpected_error_of_any_step_costs_the_record_not_the_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = record_to_json(make_records(1)[0])

    def boom(*_: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(admit, "index_for", boom)
    letter = _admission().admit(amqp(body), 3, 0)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.code) == ("prepare", "prepare_error")
    assert "OverflowError: date value out of range" in letter.reason
    assert letter.body == body

    monkeypatch.undo()
    monkeypatch.setattr(admit, "content_digest", lambda _: 1 // 0)
    letter = _admission().admit(amqp(body), 4, 0)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.code) == ("dedup", "dedup_error")
    assert "ZeroDivisionError" in letter.reason


def test_a_resend_is_dropped_and_a_reused_log_id_dead_lettered() -> None:
    admission = _admission()
    first = make_records(1)[0]
    assert admission.admit(amqp(record_to_json(first)), 1, 0) == first
    # The same record again (a resend, another key order): dropped without a dead letter.
    shuffled = json.dumps(dict(reversed(list(first.items())))).encode()
    assert admission.admit(amqp(shuffled), 2, 0) is None
    # The same log_id with other content: the first stands.
    reused = record_to_json({**first, "action": "DELETE"})
    letter = admission.admit(amqp(reused), 3, 0)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.code, letter.log_id) == (
        "dedup",
        "duplicate_log_id",
        first["log_id"],
    )
    assert letter.reason.startswith("duplicate_log_id:")
    # The memory keeps the first version: a resend of it is still a resend.
    assert admission.admit(amqp(record_to_json(first)), 4, 0) is None


def test_the_warm_up_remembers_content_so_a_reuse_after_a_restart_is_caught() -> None:
    admission = _admission()
    first = make_records(1)[0]
    admission.warm(amqp(record_to_json(first)))
    admission.warm(b"not AMQP at all")
    letter = admission.admit(amqp(record_to_json({**first, "user_id": "mallory"})), 9, 0)
    assert isinstance(letter, DeadLetter) and letter.code == "duplicate_log_id"


def test_recent_ids_refuse_a_non_canonical_log_id() -> None:
    recent = RecentIds(10)
    log_id = new_log_id()
    for spelling in (log_id + "\n", "{" + log_id + "}", f"urn:uuid:{log_id}"):
        with pytest.raises(ValueError, match="36-character"):
            recent.remember(spelling, 0)


def test_a_record_no_parquet_row_can_hold_is_set_apart() -> None:
    records = make_records(3)
    records[1] = {**records[1], "schema_version": 10**30}
    table, bad = parquet.records_table_checked(records, lambda exc: failure("archive", exc)[1])
    assert [position for position, _ in bad] == [1]
    assert "archive failed on this record" in bad[0][1]
    assert table.column("log_id").to_pylist() == [records[0]["log_id"], records[2]["log_id"]]
