"""Consumer groups on one stream: consumers sharing a ``--consumer-name`` are one RabbitMQ
single-active-consumer group (one archives, the others stand by and take over), and a second
group on the same stream and S3 prefix is refused at start."""

from __future__ import annotations

import re
import time

import pytest

from audit_logging.consumer.groups import marker_key
from audit_logging.settings import Settings
from tests._ports import cut_own_connections
from tests._stack import s3_client
from tests.consumer._digest_chain import assert_complete_chain
from tests.consumer._helpers import (
    ConsumerProcess,
    PacedPublisher,
    bodies_of,
    create_stream,
    make_records,
    wait_until,
)
from tests.consumer._sinks import archived_log_ids, assert_counts, wait_for_all
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services, pytest.mark.slow]
ARGS = ("--batch-size", "500", "--flush-interval", "1")
ACTIVE = "is the active consumer"
STANDBY = "is a standby"


def publish_paced(
    settings: Settings, count: int, per_second: int
) -> tuple[set[str], PacedPublisher]:
    """``count`` records published at a steady pace in the background; their log_ids."""
    records = make_records(count)
    create_stream(settings)
    publisher = PacedPublisher(settings, bodies_of(records), per_second=per_second)
    publisher.start()
    return {record["log_id"] for record in records}, publisher


def finish(
    settings: Settings, expected: set[str], publisher: PacedPublisher, *last: ConsumerProcess
) -> None:
    """Once every record is published and archived, the consumers left stop cleanly and S3
    and OpenSearch hold each record exactly once."""
    publisher.join_checked(30)
    wait_for_all(settings, expected, 60)
    for consumer in last:
        assert consumer.stop() == 0, consumer.log()
    assert_counts(settings, expected)
    # The digests list every object once, whoever of the group wrote it.
    assert_complete_chain(settings)


def wait_for_log(consumer: ConsumerProcess, text: str, timeout: float) -> None:
    wait_until(
        f"{text!r} in the consumer log",
        lambda: text in consumer.log(),
        lambda found: found or not consumer.running(),
        timeout,
    )
    assert text in consumer.log(), consumer.log()


def test_two_consumers_with_one_name_archive_each_record_once(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    # The duplicate case: before groups, S3 held ~5,000 rows for these 3,000 log_ids.
    expected, publisher = publish_paced(settings, 3000, per_second=500)
    # Batches close by time, so each process would close them at its own offsets.
    args = ("--batch-size", "5000", "--flush-interval", "1", "--consumer-name", "archive")
    first = start_consumer(*args)
    time.sleep(2.5)
    second = start_consumer(*args, workdir="second")
    finish(settings, expected, publisher, first, second)
    assert ACTIVE in first.log() and STANDBY in second.log(), second.log()
    assert second.batch_lines() == 0, second.log()


def test_standby_takes_over_when_the_active_consumer_is_killed(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    expected, publisher = publish_paced(settings, 3000, per_second=300)
    active = start_consumer(*ARGS, "--consumer-name", "archive")
    wait_for_log(active, ACTIVE, 20)
    standby = start_consumer(*ARGS, "--consumer-name", "archive", workdir="standby")
    wait_for_log(standby, STANDBY, 20)
    wait_until(
        "the active consumer to archive 1,000 records",
        lambda: len(archived_log_ids(settings)),
        lambda n: n >= 1000,
        20,
    )
    killed_at = time.monotonic()
    active.kill()
    deadline = killed_at + 20
    while standby.batch_lines() == 0:
        assert time.monotonic() < deadline, f"no takeover within 20 s:\n{standby.log()}"
        time.sleep(0.02)
    takeover = time.monotonic() - killed_at
    print(f"takeover: {takeover:.2f} s from SIGKILL to the first batch archived by the standby")
    finish(settings, expected, publisher, standby)
    assert "resumes stream" in standby.log(), standby.log()


def test_standby_that_takes_over_after_upload_before_offset_store_does_not_archive_again(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    # The active one dies right after its third upload, before that batch's offset is stored:
    # the standby resumes at the stored offset and must recognise the file in S3.
    expected, publisher = publish_paced(settings, 3000, per_second=500)
    active = start_consumer(*ARGS, "--consumer-name", "archive", crash_after_upload=3)
    wait_for_log(active, ACTIVE, 20)
    standby = start_consumer(*ARGS, "--consumer-name", "archive", workdir="standby")
    assert active.wait(30) == 137, active.log()
    finish(settings, expected, publisher, standby)
    assert "written past the stored offset" in standby.log(), standby.log()


def test_a_second_group_on_the_same_stream_and_prefix_is_refused(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    create_stream(settings)
    owner = start_consumer(*ARGS, "--consumer-name", "archive-a")
    wait_for_log(owner, ACTIVE, 20)
    other = start_consumer(*ARGS, "--consumer-name", "archive-b", workdir="b")
    assert other.wait(30) == 2, other.log()
    message = other.log()
    for text in ("--consumer-name", "AUDIT_LOG_S3_PREFIX", "'archive-a'", "'archive-b'"):
        assert text in message, message
    assert other.batch_lines() == 0

    # The operator hands the archive over: stop the owner, delete the marker.
    assert owner.stop() == 0, owner.log()
    s3_client(settings).delete_object(
        Bucket=settings.s3_bucket, Key=marker_key(settings.s3_prefix, settings.rabbitmq_stream_name)
    )
    successor = start_consumer(*ARGS, "--consumer-name", "archive-b", workdir="b2")
    wait_for_log(successor, ACTIVE, 20)
    assert successor.stop() == 0, successor.log()


def test_a_member_cut_off_from_the_broker_uploads_nothing_its_successor_archives(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    # The active member loses its connection while a batch waits to be uploaded (its
    # Parquet takes 6 s to build here). The broker makes the standby active at once, and it
    # archives those records again; the cut-off member must not upload them too.
    expected, publisher = publish_paced(settings, 3000, per_second=500)
    # Batches closed by time, so the two members' files would have different names.
    args = ("--batch-size", "100000", "--flush-interval", "1", "--consumer-name", "archive")
    slow = start_consumer(*args, wrapper=["tests.consumer._slow_archive_consumer", "6"])
    wait_for_log(slow, ACTIVE, 20)
    standby = start_consumer(*args, workdir="standby")
    wait_for_log(standby, STANDBY, 20)
    # Its first batch closed a second after the first record and builds for 6 s from then.
    time.sleep(2.0)
    cut_own_connections(settings.rabbitmq_stream_port, pid=slow.pid)
    wait_for_log(standby, ACTIVE, 20)
    publisher.join_checked(30)
    wait_for_all(settings, expected, 60)
    # Until the slow member's batch ends: uploaded (the duplicate) or abandoned.
    wait_until(
        "the slow member's batch to end",
        slow.log,
        lambda log: "abandoned" in log or re.search(r"batch \d+: ", log) is not None,
        30,
    )
    finish(settings, expected, publisher, slow, standby)
    assert "abandoned" in slow.log(), slow.log()
