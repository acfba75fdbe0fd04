"""What a log call keeps: the values at the time of the call, whatever the app does next."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from audit_logging._decode import decode_record
from audit_logging.handlers import AuditHandler
from audit_logging.handlers._snapshot import MAX_ITEMS, Snapshot
from audit_logging.publisher import Encode, RecordRejected
from audit_logging.settings import Settings
from tests._stack import stream_records


class DeferredTransport:
    """Encodes only at ``flush``, as the publisher's thread does some time after ``emit``."""

    def __init__(self, settings: Settings, encode: Encode) -> None:
        self._encode = encode
        self.items: list[Any] = []
        self.bodies: list[bytes] = []

    def submit(self, item: Any) -> None:
        self.items.append(item)

    def flush(self, timeout: float) -> int:
        for item in self.items:
            with contextlib.suppress(RecordRejected):
                self.bodies.append(self._encode(item))
        self.items.clear()
        return 0

    def close(self, timeout: float) -> int:
        return self.flush(timeout)

    def stats(self) -> dict[str, int]:
        return {}


@pytest.fixture
def deferred() -> Iterator[tuple[logging.Logger, DeferredTransport]]:
    handler = AuditHandler(transport_factory=DeferredTransport, env_file=None)
    logger = logging.getLogger(f"audit.snapshot.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    transport = handler.transport
    assert isinstance(transport, DeferredTransport)
    yield logger, transport
    handler.close()


def _nested(n: int) -> dict[str, Any]:
    return {
        "action": "UPDATE",
        "changes": {"email": [f"old{n}@a.example", f"new{n}@a.example"], "tags": [["a"], {"b"}]},
        "extra": {"plan": {"name": "pro", "seats": [n, n + 1]}},
        "cart": [{"sku": "A", "qty": n}],
        "user_id": n,
    }


def test_values_changed_after_the_call_do_not_reach_the_record(
    deferred: tuple[logging.Logger, DeferredTransport],
) -> None:
    logger, transport = deferred
    given = [_nested(n) for n in range(50)]
    for n, extra in enumerate(given):
        logger.info("Changed %s", n, extra=extra)
        # The app goes on with its objects: every nested level changes.
        extra["changes"]["email"][1] = "mutated"
        extra["changes"]["tags"][0].append("mutated")
        extra["changes"]["tags"][1].add("mutated")
        extra["extra"]["plan"]["name"] = "mutated"
        extra["extra"]["plan"]["seats"].clear()
        extra["cart"][0]["qty"] = -1
        extra["cart"].append("mutated")
    transport.flush(0)
    records = [json.loads(body) for body in transport.bodies]
    assert len(records) == 50
    for n, record in enumerate(records):
        assert record["changes"] == {
            "email": [f"old{n}@a.example", f"new{n}@a.example"], "tags": [["a"], ["b"]]
        }
        assert record["extra"] == {"plan": {"name": "pro", "seats": [n, n + 1]},
                                   "cart": [{"sku": "A", "qty": n}]}
        assert record["user_id"] == str(n)
        assert "mutated" not in json.dumps(record)


def test_app_objects_are_rendered_at_the_call_and_immutable_values_kept(
    deferred: tuple[logging.Logger, DeferredTransport], caplog: pytest.LogCaptureFixture
) -> None:
    class Account:
        def __init__(self) -> None:
            self.state = "open"

        def __repr__(self) -> str:
            return f"Account({self.state})"

    logger, transport = deferred
    account = Account()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with caplog.at_level(logging.WARNING, "audit_logging"):
        logger.info("x", extra={"action": "CLOSE", "account": account, "at": when,
                                "amount": decimal.Decimal("1.50"), "ref": uuid.UUID(int=5)})
    account.state = "closed"
    transport.flush(0)
    (record,) = (json.loads(body) for body in transport.bodies)
    assert record["extra"]["account"] == "<unserialisable Account> Account(open)"
    assert record["extra"]["at"] == "2026-01-02T03:04:05+00:00"
    assert record["extra"]["amount"] == "1.50"
    assert record["extra"]["ref"] == str(uuid.UUID(int=5))
    assert any("extra.account" in r.getMessage() for r in caplog.records)


def test_a_structure_too_deep_is_cut_into_a_value_the_decoder_accepts_unchanged(
    deferred: tuple[logging.Logger, DeferredTransport],
) -> None:
    logger, transport = deferred
    for depth in (28, 29, 30, 31, 32, 33, 40, 1_000):
        deep: Any = "leaf"
        for _ in range(depth):
            deep = {"a": deep}
        listed: Any = 1
        for _ in range(depth):
            listed = [listed]
        logger.info("d", extra={"action": "X", "extra": deep})
        logger.info("d", extra={"action": "X", "nested": listed})
        logger.info("d", extra={"action": "X", "changes": {"f": [deep, listed]}})
        logger.info("d", extra={"action": "X", "changes": {"f": deep}})
    transport.flush(0)
    assert len(transport.bodies) == 32
    for body in transport.bodies:
        decoded = decode_record(body)
        assert decoded == json.loads(body), decoded
    deepest = json.loads(transport.bodies[-4])
    assert deepest["truncated"] == ["extra"]


@pytest.mark.parametrize("changes", [5, "text", [1, 2], [1, 2, 3], None, {"a": 1}, {"a": [1]}])
def test_changes_of_any_shape_become_a_record_the_decoder_accepts_unchanged(
    deferred: tuple[logging.Logger, DeferredTransport], changes: Any
) -> None:
    logger, transport = deferred
    logger.info("c", extra={"action": "UPDATE", "changes": changes})
    transport.flush(0)
    (body,) = transport.bodies
    assert decode_record(body) == json.loads(body)


def test_many_items_are_cut_below_the_decoders_key_limit(
    deferred: tuple[logging.Logger, DeferredTransport],
) -> None:
    logger, transport = deferred
    many = {f"k{i}": {"": i} for i in range(20_000)}
    logger.info("m", extra={"action": "X", "changes": {"f": [many, None]}, "extra": many})
    transport.flush(0)
    (body,) = transport.bodies
    record = json.loads(body)
    assert decode_record(body) == record
    assert "extra" in record["truncated"]
    assert "changes" in record["truncated"]


def test_strict_snapshot_names_the_value_it_refuses() -> None:
    from audit_logging.errors import RecordError

    with pytest.raises(RecordError, match=r"extra\.n"):
        Snapshot(strict=True).field("extra", {"n": 10**5000})
    deep: Any = {}
    for _ in range(100):
        deep = {"a": deep}
    with pytest.raises(RecordError, match="deeper"):
        Snapshot(strict=True).field("extra", deep)
    fits = Snapshot(strict=True)
    assert fits.field("extra", {"n": list(range(MAX_ITEMS - 1))})["n"][-1] == MAX_ITEMS - 2
    assert fits.truncated == []
    cut = Snapshot(strict=True)
    assert len(cut.field("extra", {"n": list(range(MAX_ITEMS))})["n"]) == MAX_ITEMS - 1
    assert cut.truncated == ["extra"]


@pytest.mark.services
def test_values_changed_after_the_call_do_not_reach_the_stream(settings: Settings) -> None:
    handler = AuditHandler(settings=settings)
    logger = logging.getLogger(f"audit.snapshot.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        given = [_nested(n) for n in range(50)]
        for extra in given:
            logger.info("Changed", extra=extra)
            extra["extra"]["plan"]["name"] = "mutated"
            extra["changes"]["email"][1] = "mutated"
        assert handler.flush(timeout=30) == 0
    finally:
        handler.close(timeout=10)
    records = stream_records(settings, settings.rabbitmq_stream_name, 50)
    assert len(records) == 50
    assert [r["extra"]["plan"]["name"] for r in records] == ["pro"] * 50
    assert [r["changes"]["email"][1] for r in records] == [f"new{n}@a.example" for n in range(50)]


@pytest.mark.parametrize("content", ['"', "\\", "\x01", "é", "k"])
def test_an_object_over_its_size_limit_is_cut_into_a_value_the_decoder_accepts_unchanged(
    deferred: tuple[logging.Logger, DeferredTransport], content: str
) -> None:
    logger, transport = deferred
    many = {f"{content}{i}": content * 3 for i in range(3_000)}
    logger.info("s", extra={"action": "X", "extra": many, "changes": {"f": [many, many]}})
    transport.flush(0)
    (body,) = transport.bodies
    record = json.loads(body)
    assert record["truncated"] == ["changes", "extra"] or record["truncated"] == [
        "extra", "changes"]
    assert decode_record(body) == record
