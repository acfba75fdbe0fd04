"""The publisher on a super stream (AUDIT_LOG_STREAM_PARTITIONS > 1) against the real broker:
each record in its log_id's partition once, through reconnects and a dead process's spool;
a partition count that disagrees with the broker's is refused and loses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from rstream import Producer

from audit_logging.handlers import AuditHandler
from audit_logging.partitions import partition_index, partition_names
from audit_logging.settings import Settings
from tests._ports import cut_own_connections
from tests._proxy import TcpProxy
from tests._stack import delete_super_stream, stream_records
from tests.handlers._processes import leave_orphan
from tests.handlers._records import emit_records

pytestmark = pytest.mark.services
PARTITIONS = 3


@pytest.fixture
def super_settings(settings: Settings) -> Iterator[Settings]:
    partitioned = dataclasses.replace(settings, stream_partitions=PARTITIONS)
    yield partitioned
    asyncio.run(delete_super_stream(partitioned))


def _partitions_hold(settings: Settings, count: int) -> list[list[dict[str, object]]]:
    """Each partition's records, once ``count`` records are in the partitions together."""
    held: list[list[dict[str, object]]] = []
    names = partition_names(settings.rabbitmq_stream_name, PARTITIONS)
    deadline = time.monotonic() + 60
    while True:
        held = [stream_records(settings, name, 0, timeout=5) for name in names]
        if sum(map(len, held)) >= count or time.monotonic() > deadline:
            return held


def _check_routing(
    held: list[list[dict[str, object]]], count: int, *, one_producer: bool = True
) -> None:
    every = [record for partition in held for record in partition]
    ids = Counter(str(record["object_id"]) for record in every)
    assert sorted(ids, key=int) == [str(i) for i in range(count)], "records missing"
    assert max(ids.values()) == 1, f"{sum(ids.values()) - count} records stored twice"
    for index, partition in enumerate(held):
        assert partition, f"partition {index} got nothing: routing is not by log_id"
        for record in partition:
            assert partition_index(str(record["log_id"]), PARTITIONS) == index
        if one_producer:
            # Ids increasing: each partition keeps the order records were logged in.
            numbers = [int(str(record["object_id"])) for record in partition]
            assert numbers == sorted(numbers)


def test_records_go_to_their_log_ids_partition_once_each_through_reconnects(
    super_settings: Settings,
) -> None:
    proxy = TcpProxy("127.0.0.1", super_settings.rabbitmq_stream_port)
    proxy.up()
    handler = AuditHandler(
        settings=dataclasses.replace(super_settings, rabbitmq_stream_port=proxy.port)
    )
    try:
        emit_records(handler, 0, 2_000)
        assert handler.flush(timeout=60) == 0
        # Connections cut while records are in flight: they are resent under the same
        # publishing ids, and each partition drops what it already has.
        for first in (2_000, 4_000):
            emit_records(handler, first, 1_000)
            proxy.hang()
            cut_own_connections(super_settings.rabbitmq_stream_port)
            emit_records(handler, first + 1_000, 1_000)
            threading.Timer(1.0, proxy.forward).start()
            assert handler.flush(timeout=90) == 0, handler.stats()
    finally:
        handler.close(timeout=10)
        proxy.down()
    _check_routing(_partitions_hold(super_settings, 6_000), 6_000)
    assert handler.stats()["lost"] == 0


def test_a_dead_processs_spool_is_replayed_into_the_partitions(super_settings: Settings) -> None:
    # The dead process never reached the broker: the super stream does not exist yet.
    orphan = leave_orphan(super_settings, 300, partitions=PARTITIONS)
    handler = AuditHandler(settings=super_settings)
    try:
        deadline = time.monotonic() + 60
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not orphan.exists(), "the orphan spool was not adopted"
    finally:
        assert handler.close(timeout=10) == 0
    _check_routing(_partitions_hold(super_settings, 300), 300)


def test_a_partition_count_other_than_the_brokers_is_refused_and_records_wait_in_the_spool(
    super_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    first = AuditHandler(settings=super_settings)
    emit_records(first, 0, 10)
    assert first.flush(timeout=30) == 0
    first.close(timeout=10)

    wrong = dataclasses.replace(super_settings, stream_partitions=2)
    with caplog.at_level(logging.ERROR, logger="audit_logging.publisher"):
        handler = AuditHandler(settings=wrong)
        emit_records(handler, 10, 50)
        assert handler.flush(timeout=3) == 50, "records left the spool with a wrong layout"
        assert handler.close(timeout=5) == 50
    said = [record.getMessage() for record in caplog.records]
    refused = [message for message in said if "AUDIT_LOG_STREAM_PARTITIONS" in message]
    assert refused, caplog.text
    assert "super stream of 3 partitions" in refused[0]
    assert "AUDIT_LOG_STREAM_PARTITIONS=2" in refused[0]
    assert sum(map(len, _partitions_hold(super_settings, 10))) == 10

    # With the setting put right, the spool the refused process left is sent.
    fixed = AuditHandler(settings=super_settings)
    try:
        held = _partitions_hold(super_settings, 60)
    finally:
        assert fixed.close(timeout=10) == 0
    _check_routing(held, 60)


def test_workers_starting_together_create_the_super_stream_once_and_all_publish(
    super_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # An app's workers start at once against a new stream: RabbitMQ creates a super stream
    # in steps (exchange, partitions, bindings), so the others first see none or a part,
    # which is no reason to call the layout wrong.
    caplog.set_level(logging.WARNING, logger="audit_logging.publisher")
    handlers = [AuditHandler(settings=super_settings) for _ in range(4)]
    try:
        for n, handler in enumerate(handlers):
            emit_records(handler, n * 100, 100)
        left = [handler.flush(timeout=60) for handler in handlers]
    finally:
        for handler in handlers:
            handler.close(timeout=10)
    assert left == [0, 0, 0, 0], [h.stats() for h in handlers]
    _check_routing(_partitions_hold(super_settings, 400), 400, one_producer=False)
    complaints = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not complaints, complaints


def test_partition_streams_left_without_their_super_stream_are_named_in_the_error(
    super_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def make_orphan_streams() -> None:
        producer = Producer(**super_settings.stream_client_args())
        try:
            await producer.start()
            for name in partition_names(super_settings.rabbitmq_stream_name, PARTITIONS):
                await producer.create_stream(name)
        finally:
            await producer.close()

    async def delete_orphan_streams() -> None:
        producer = Producer(**super_settings.stream_client_args())
        try:
            await producer.start()
            for name in partition_names(super_settings.rabbitmq_stream_name, PARTITIONS):
                await producer.delete_stream(name, missing_ok=True)
        finally:
            await producer.close()

    asyncio.run(make_orphan_streams())
    try:
        with caplog.at_level(logging.ERROR, logger="audit_logging.publisher"):
            handler = AuditHandler(settings=super_settings)
            emit_records(handler, 0, 5)
            assert handler.flush(timeout=8) == 5
            assert handler.close(timeout=5) == 5
        said = "\n".join(record.getMessage() for record in caplog.records)
        assert "but no super stream" in said, said
        assert f"{super_settings.rabbitmq_stream_name}-0" in said
        assert "rabbitmq-streams add_super_stream" in said
    finally:
        asyncio.run(delete_orphan_streams())
