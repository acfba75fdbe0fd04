"""The consumer as a real process against the real stack: every record once in each sink,
through large runs, crashes at random points and a crash between upload and offset store."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
import time

import pytest

from audit_logging.record import format_timestamp
from audit_logging.settings import Settings
from tests.consumer._helpers import (
    NAME,
    bodies_of,
    make_records,
    publish,
    publish_records,
    stored_offset,
    wait_for_offset,
    wait_until,
)
from tests.consumer._sinks import archive_keys, archived_log_ids, archived_rows, assert_exactly_once
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_fifty_thousand_records_reach_opensearch_and_s3_once_each(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    records = publish_records(settings, 50_000)

    consumer = start_consumer("--batch-size", "10000", "--flush-interval", "1")
    wait_for_offset(settings, 49_999, timeout=300)
    assert consumer.stop() == 0, consumer.log()

    assert_exactly_once(settings, {record["log_id"] for record in records})
    # The archive holds the records themselves, field for field.
    expected = {record["log_id"]: record for record in records}
    for row in archived_rows(settings):
        record = expected[row["log_id"]]
        assert format_timestamp(row.pop("timestamp")) == record["timestamp"]
        for name in ("changes", "extra"):
            text = row.pop(name)
            assert (json.loads(text) if text is not None else None) == record[name]
        assert row == {
            k: v for k, v in record.items() if k not in ("timestamp", "changes", "extra")
        }
    # Keys follow the layout, and no two files share an offset.
    day = dt.datetime.now(dt.UTC)
    key_re = re.compile(
        re.escape(f"{settings.s3_prefix}year={day:%Y}/month={day:%m}/day=")
        + r"\d\d/"
        + re.escape(settings.rabbitmq_stream_name)
        + r"-(\d{20})-(\d{20})\.parquet"
    )
    ranges = sorted(
        (int(m.group(1)), int(m.group(2)))
        for m in (key_re.fullmatch(key) for key in archive_keys(settings))
        if m is not None
    )
    assert len(ranges) == len(archive_keys(settings))
    assert ranges[0][0] == 0 and ranges[-1][1] == 49_999
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))


def test_killed_at_five_points_including_after_upload_before_offset_store(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    records = publish_records(settings, 50_000)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    args = ("--batch-size", "5000", "--flush-interval", "1")

    # 1: the test hook ends the process right after its second Parquet upload, before the
    # offset of that batch is stored.
    hooked = start_consumer(*args, crash_after_upload=2)
    assert hooked.wait(180) == 137, hooked.log()
    stored = stored_offset(settings, NAME)
    archived = len(archived_log_ids(settings))
    assert archived > (-1 if stored is None else stored) + 1, (
        f"S3 should be ahead of the stored offset {stored}: {archived} archived"
    )

    # 2-5: SIGKILL at random moments of the run.
    logs = []
    for _ in range(4):
        victim = start_consumer(*args)
        time.sleep(rng.uniform(1.0, 4.0))
        assert victim.running(), f"seed {seed}: exited early\n{victim.log()}"
        victim.kill()
        logs.append(victim.log())

    survivor = start_consumer(*args)
    # Its SIGTERM handler is in place once it says where it resumes; the victims may have
    # finished the stream already, so the offset alone does not say it has started.
    wait_until(
        "the survivor to resume",
        survivor.log,
        lambda log: "resumes stream" in log.rsplit("--- start", 1)[-1],
        60,
    )
    wait_for_offset(settings, 49_999, timeout=300)
    assert survivor.stop() == 0, survivor.log()
    logs.append(survivor.log())
    # The first restart after the hooked crash found S3 ahead of the stored offset.
    assert any("written past the stored offset" in log for log in logs), logs
    assert_exactly_once(settings, {record["log_id"] for record in records})


def test_two_consumer_names_each_receive_everything(
    settings: Settings, other_sinks: Settings, start_consumer: StartConsumer
) -> None:
    records = publish_records(settings, 3000)
    args = ("--batch-size", "1000", "--flush-interval", "1")

    first = start_consumer(*args, "--consumer-name", "archive-a")
    second = start_consumer(*args, "--consumer-name", "archive-b", sinks=other_sinks, workdir="b")
    wait_for_offset(settings, 2999, timeout=120, name="archive-a")
    wait_for_offset(settings, 2999, timeout=120, name="archive-b")
    assert first.stop() == 0 and second.stop() == 0

    expected = {record["log_id"] for record in records}
    assert_exactly_once(settings, expected)
    assert_exactly_once(other_sinks, expected)


def test_a_record_resent_to_the_stream_is_kept_once(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    records = make_records(30)
    bodies = bodies_of(records)
    # A producer resend: the same message reached the stream twice, a little later.
    publish(settings, [*bodies[:20], bodies[5], *bodies[20:], bodies[25]])

    consumer = start_consumer("--batch-size", "10", "--flush-interval", "1")
    wait_for_offset(settings, 31, timeout=60)
    assert consumer.stop() == 0

    assert_exactly_once(settings, {record["log_id"] for record in records})
    assert re.search(r"\b2 duplicates dropped", consumer.log()), consumer.log()


def test_start_from_an_offset_for_a_new_name(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    records = publish_records(settings, 100)

    consumer = start_consumer("--from", "60", "--batch-size", "50", "--flush-interval", "1")
    wait_for_offset(settings, 99, timeout=60)
    assert consumer.stop() == 0
    assert_exactly_once(settings, {record["log_id"] for record in records[60:]})
