"""Consumer groups on a super stream (AUDIT_LOG_STREAM_PARTITIONS=3) against the real broker:
the group's members share the partitions, a standby takes a killed member's partition over,
and the archive holds every record exactly once, in per-partition files."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from audit_logging.partitions import partition_names
from audit_logging.publisher import StreamPublisher
from audit_logging.settings import Settings
from tests._stack import delete_super_stream
from tests.consumer._digest_chain import assert_complete_chain
from tests.consumer._helpers import (
    ConsumerProcess,
    bodies_of,
    create_stream,
    make_records,
    wait_until,
)
from tests.consumer._sinks import archive_keys, archived_log_ids, assert_counts, wait_for_all
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services, pytest.mark.slow]
PARTITIONS = 3
ENV = {"AUDIT_LOG_STREAM_PARTITIONS": str(PARTITIONS)}
ARGS = ("--batch-size", "2000", "--flush-interval", "1", "--consumer-name", "archive")
# "... is the active consumer of group 'archive' on partition 'x-1' of super stream 'x'"
ACTIVE_RE = re.compile(r"is the active consumer of group '[^']+' on partition '([^']+)'")
HANDED_RE = re.compile(r"handed partition '([^']+)' of super stream")
STANDBY_RE = re.compile(r"is a standby of group '[^']+' on partition '([^']+)'")


@pytest.fixture
def super_settings(settings: Settings) -> Iterator[Settings]:
    partitioned = dataclasses.replace(settings, stream_partitions=PARTITIONS)
    yield partitioned
    asyncio.run(delete_super_stream(partitioned))


class PacedCapture(threading.Thread):
    """The library's own publisher at a steady pace, routing to the partitions."""

    def __init__(self, settings: Settings, bodies: Sequence[bytes], per_second: int) -> None:
        super().__init__(daemon=True)
        self.publisher = StreamPublisher(settings, lambda body: body)
        self.bodies = bodies
        self.per_second = per_second
        self.left: int | None = None

    def run(self) -> None:
        step = max(1, self.per_second // 20)
        began = time.monotonic()
        for start in range(0, len(self.bodies), step):
            for body in self.bodies[start : start + step]:
                self.publisher.submit(body)
            ahead = began + (start + step) / self.per_second - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        self.left = self.publisher.close(timeout=60)

    def join_checked(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        assert self.left == 0, f"{self.left} records not confirmed: {self.publisher.stats()}"


def active_partitions(consumer: ConsumerProcess) -> set[str]:
    """The partitions the consumer's log says it is active on now."""
    active: set[str] = set()
    for line in consumer.log().splitlines():
        if found := ACTIVE_RE.search(line):
            active.add(found.group(1))
        elif found := HANDED_RE.search(line) or STANDBY_RE.search(line):
            active.discard(found.group(1))
    return active


def start_group(start_consumer: StartConsumer, count: int) -> list[ConsumerProcess]:
    """``count`` members, each started once the one before has joined every partition, as
    a rolling deployment starts them: RabbitMQ spreads partitions by the order members
    joined, so members that join in turn get one partition each."""
    members = []
    for i in range(count):
        member = start_consumer(*ARGS, env=ENV, workdir=f"consumer-{i}")
        wait_for_join(member, 60)
        members.append(member)
    return members


def wait_for_join(member: ConsumerProcess, timeout: float) -> None:
    wait_until(
        "the consumer to join the group on every partition",
        lambda: (joined(member), member.running()),
        lambda seen: len(seen[0]) == PARTITIONS or not seen[1],
        timeout,
    )
    assert member.running(), member.log()


def joined(consumer: ConsumerProcess) -> set[str]:
    log = consumer.log()
    return {m.group(1) for regex in (ACTIVE_RE, STANDBY_RE) for m in regex.finditer(log)}


def wait_for_spread(consumers: Sequence[ConsumerProcess], timeout: float) -> None:
    """Until each consumer is active on exactly one partition (RabbitMQ's rebalancing)."""
    wait_until(
        "each consumer active on one partition",
        lambda: [len(active_partitions(c)) for c in consumers],
        lambda counts: counts == [1] * len(consumers),
        timeout,
    )


def assert_exactly_once(settings: Settings, expected: set[str]) -> None:
    assert_counts(settings, expected)
    # One file name per partition stream: {partition}-{first}-{last}.parquet.
    names = partition_names(settings.rabbitmq_stream_name, PARTITIONS)
    per_partition = Counter(
        name for key in archive_keys(settings) for name in names
        if key.rsplit("/", 1)[1].startswith(f"{name}-0")
    )
    assert set(per_partition) == set(names), per_partition
    assert sum(per_partition.values()) == len(archive_keys(settings))
    # Each partition has its own chain of digests, listing each of its objects once, also
    # when a member was killed or handed its partition over.
    for name in names:
        assert_complete_chain(settings, stream=name)


def stop_and_check(
    settings: Settings, consumers: Sequence[ConsumerProcess], expected: set[str], timeout: float
) -> None:
    """Once S3 holds every record: the consumers stop cleanly and each record is in S3 and
    OpenSearch exactly once."""
    wait_for_all(settings, expected, timeout)
    for consumer in consumers:
        assert consumer.stop() == 0, consumer.log()
    assert_exactly_once(settings, expected)


def test_three_consumers_share_three_partitions_and_archive_60000_records_once(
    super_settings: Settings, start_consumer: StartConsumer
) -> None:
    records = make_records(60_000)
    capture = PacedCapture(super_settings, bodies_of(records), per_second=3_000)
    capture.start()  # creates the super stream
    consumers = start_group(start_consumer, PARTITIONS)
    wait_for_spread(consumers, 60)
    capture.join_checked(120)
    expected = {record["log_id"] for record in records}
    stop_and_check(super_settings, consumers, expected, 120)
    # Each archived: the work was shared, not done by one member with two idle.
    assert all(consumer.batch_lines() > 0 for consumer in consumers)


def test_a_standby_takes_a_killed_members_partition_over_and_nothing_is_archived_twice(
    super_settings: Settings, start_consumer: StartConsumer
) -> None:
    records = make_records(15_000)
    capture = PacedCapture(super_settings, bodies_of(records), per_second=1_000)
    capture.start()
    consumers = start_group(start_consumer, PARTITIONS)
    wait_for_spread(consumers, 60)
    wait_until(
        "3,000 records archived",
        lambda: len(archived_log_ids(super_settings)),
        lambda n: n >= 3_000,
        60,
    )
    victim, *survivors = consumers
    (orphaned,) = active_partitions(victim)
    killed_at = time.monotonic()
    victim.kill()
    # A survivor becomes active on the orphaned partition and archives from it.
    deadline = killed_at + 30
    taker: ConsumerProcess | None = None
    while taker is None:
        assert time.monotonic() < deadline, "\n".join(c.log() for c in survivors)
        taker = next((c for c in survivors if orphaned in active_partitions(c)), None)
        time.sleep(0.02)
    print(f"takeover of {orphaned}: {time.monotonic() - killed_at:.2f} s after SIGKILL")
    capture.join_checked(60)
    expected = {record["log_id"] for record in records}
    stop_and_check(super_settings, survivors, expected, 60)
    assert f"resumes stream '{orphaned}'" in taker.log(), taker.log()


def test_a_consumer_with_another_partition_count_is_refused_at_start(
    super_settings: Settings, start_consumer: StartConsumer
) -> None:
    capture = PacedCapture(super_settings, bodies_of(make_records(10)), per_second=1_000)
    capture.start()
    capture.join_checked(60)
    wrong = start_consumer(*ARGS, env={"AUDIT_LOG_STREAM_PARTITIONS": "2"})
    assert wrong.wait(60) == 2, wrong.log()
    assert "AUDIT_LOG_STREAM_PARTITIONS" in wrong.log()
    assert "super stream of 3 partitions" in wrong.log()
    single = start_consumer(*ARGS, workdir="single")
    assert single.wait(60) == 2, single.log()
    assert "AUDIT_LOG_STREAM_PARTITIONS=1" in single.log()


def test_a_consumer_expecting_a_super_stream_is_refused_by_a_single_stream(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    create_stream(settings)
    partitioned = start_consumer(*ARGS, env=ENV)
    assert partitioned.wait(60) == 2, partitioned.log()
    assert "has a single stream (not a super stream)" in partitioned.log()


def test_another_group_reading_a_partition_stream_directly_is_refused(
    super_settings: Settings, start_consumer: StartConsumer
) -> None:
    capture = PacedCapture(super_settings, bodies_of(make_records(300)), per_second=1_000)
    capture.start()
    capture.join_checked(60)
    (owner,) = start_group(start_consumer, 1)
    partition = partition_names(super_settings.rabbitmq_stream_name, PARTITIONS)[0]
    other = start_consumer(
        "--consumer-name", "other", env={"RABBITMQ_STREAM_NAME": partition}, workdir="other"
    )
    assert other.wait(60) == 2, other.log()
    assert "by consumer group 'archive'" in other.log()
    assert owner.running()
