"""``--verify-every`` against the real RabbitMQ, OpenSearch and S3: a consumer checks the last
complete UTC day on its schedule and logs one line (WARNING with the counts when the index and
the archive differ, INFO when they agree); only the group's active member checks; OpenSearch
failing costs one warning and the consumer keeps consuming; SIGTERM kills a check in progress.

The consumer runs as ``tests.consumer._quick_verify_consumer`` (the real command, with the
interval allowed down to a second); the day's records are written straight to the archive and
reindexed, as the archive tests do."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from audit_logging.archive import parquet
from audit_logging.consumer.daily_verify import checked_day, settle_delay
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.search_index import index_for
from audit_logging.settings import Settings
from tests._proxy import TcpProxy
from tests._stack import opensearch_client
from tests.archive._archive import archive_command, put_archive, record_at
from tests.consumer._helpers import (
    NAME,
    ConsumerProcess,
    create_stream,
    publish_records,
    stored_offset,
    wait_for_offset,
    wait_until,
)
from tests.consumer.conftest import StartConsumer

pytestmark = pytest.mark.services

QUICK = ["tests.consumer._quick_verify_consumer"]
FLUSH = 1.0
ARGS = ("--verify-every", "2", "--flush-interval", str(FLUSH))


def the_day() -> dt.date:
    """The day the consumer checks now (yesterday, or the day before in the first minutes
    after midnight UTC)."""
    return checked_day(dt.datetime.now(dt.UTC), settle_delay(FLUSH))


def records_of(day: dt.date, count: int) -> list[dict[str, Any]]:
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC)
    return [record_at(noon + dt.timedelta(minutes=i), object_id=f"obj_{i}") for i in range(count)]


def archive_and_index(settings: Settings, records: list[dict[str, Any]], tmp_path: Path,
                      **options: Any) -> list[str]:
    keys = put_archive(settings, records, **options)
    day = records[0]["timestamp"][:10]
    done = archive_command(settings, "reindex", "--since", day, "--until", day,
                           "--state-dir", str(tmp_path / "reindex-state"))
    assert done.returncode == 0, done.stderr
    return keys


def rewrite_without(settings: Settings, key: str, log_id: str) -> None:
    """Put ``key`` back without the row of ``log_id`` (the archive losing a record)."""
    s3 = make_s3_client(settings)
    bucket = str(settings.s3_bucket)
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    kept = table.filter(pc.field("log_id") != log_id)
    assert kept.num_rows == table.num_rows - 1
    s3.put_object(Bucket=bucket, Key=key, Body=parquet.parquet_bytes(kept))


def summaries(consumer: ConsumerProcess, day: dt.date) -> list[str]:
    """The consumer's summary lines (and failures) of ``day``'s checks, in order."""
    marks = (f"verify {day}: the index", f"verify {day} could not", f"verify {day} did not")
    return [line for line in consumer.log().splitlines() if any(m in line for m in marks)]


def wait_for_summaries(consumer: ConsumerProcess, day: dt.date, count: int) -> list[str]:
    return wait_until(
        f"{count} verify lines for {day}",
        lambda: summaries(consumer, day),
        lambda lines: len(lines) >= count or not consumer.running(),
        120,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    opensearch = opensearch_client(settings)
    yield opensearch
    opensearch.close()


def test_a_day_that_differs_is_one_warning_line_with_its_counts(
    settings: Settings, start_consumer: StartConsumer, client: Any, tmp_path: Path
) -> None:
    day = the_day()
    records = records_of(day, 6)
    keys = archive_and_index(settings, records, tmp_path, per_file=3)
    # One record the index lost, one the archive lost, one archived twice (another file).
    lost_in_index, lost_in_archive, twice = records[1], records[4], records[0]
    client.delete(index=index_for(settings.opensearch_index_prefix, lost_in_index["timestamp"]),
                  id=lost_in_index["log_id"], refresh=True)
    rewrite_without(settings, keys[1], lost_in_archive["log_id"])
    put_archive(settings, [twice], first_offset=1000)
    create_stream(settings)

    consumer = start_consumer(*ARGS, wrapper=QUICK)
    lines = wait_for_summaries(consumer, day, 2)
    assert len(lines) >= 2, consumer.log()
    for line in lines:
        assert " WARNING audit_logging.consumer.verify: " in line, line
        assert (f"verify {day}: the index and the archive differ: 6 records in the archive "
                "(3 files), 5 in the index; "
                f"missing in index 1 ({lost_in_index['log_id']}), "
                f"missing in archive 1 ({lost_in_archive['log_id']}), "
                f"duplicates 1 ({twice['log_id']}), offset problems 0, "
                "unreadable files 0 (") in line, line
        assert f"verify --since {day} --until {day}" in line and "--repair" in line
    # Verify repairs nothing by itself: the index still misses the record.
    assert not client.exists(
        index=index_for(settings.opensearch_index_prefix, lost_in_index["timestamp"]),
        id=lost_in_index["log_id"],
    )
    assert consumer.stop() == 0


def test_an_agreeing_day_is_one_info_line_from_the_active_member_only(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    day = the_day()
    archive_and_index(settings, records_of(day, 4), tmp_path)
    create_stream(settings)
    active = start_consumer(*ARGS, wrapper=QUICK, workdir="a")
    wait_until("the first member active", active.log, lambda log: "is the active" in log, 60)
    standby = start_consumer(*ARGS, wrapper=QUICK, workdir="b")
    wait_until("the second member a standby", standby.log, lambda log: "is a standby" in log, 60)
    checked = len(summaries(active, day))

    # Checks run while the consumer consumes.
    publish_records(settings, 30)
    wait_for_offset(settings, 29, 60)
    lines = wait_for_summaries(active, day, checked + 2)
    assert len(lines) >= checked + 2, active.log()
    for line in lines:
        assert " INFO audit_logging.consumer.verify: " in line, line
        assert line.endswith(" s)"), line
        assert (f"verify {day}: the index and the archive agree: 4 records in the archive "
                "(1 file), 4 in the index; missing in index 0, missing in archive 0, "
                "duplicates 0, offset problems 0, unreadable files 0 (") in line, line
    # The standby woke at the same times (the schedule is the wall clock's) and checked nothing.
    assert summaries(standby, day) == [], standby.log()
    assert active.stop() == 0
    assert standby.stop() == 0


@pytest.fixture
def opensearch_proxy(settings: Settings) -> Iterator[TcpProxy]:
    proxy = TcpProxy(settings.opensearch_host, settings.opensearch_port)
    proxy.up()
    yield proxy
    proxy.down()


def test_opensearch_failing_is_one_warning_and_the_consumer_keeps_consuming(
    settings: Settings, start_consumer: StartConsumer, opensearch_proxy: TcpProxy
) -> None:
    day = the_day()
    create_stream(settings)
    through_proxy = {"OPENSEARCH_HOST": "127.0.0.1", "OPENSEARCH_PORT": str(opensearch_proxy.port)}
    consumer = start_consumer(*ARGS, wrapper=QUICK, env=through_proxy)
    publish_records(settings, 10)
    wait_for_offset(settings, 9, 60)
    before = len(wait_for_summaries(consumer, day, 1))

    opensearch_proxy.down()
    lines = wait_until(
        "a failed check",
        lambda: summaries(consumer, day)[before:],
        lambda new: any("could not run" in line for line in new) or not consumer.running(),
        120,
    )
    failed = next(line for line in lines if "could not run" in line)
    assert consumer.running(), consumer.log()
    assert " WARNING audit_logging.consumer.verify: " in failed
    assert (f"verify {day} could not run: verify: failed: OpenSearch "
            f"(http://127.0.0.1:{opensearch_proxy.port}): ") in failed, failed
    assert failed.endswith("; the next run checks again"), failed
    secret = settings.aws_secret_access_key
    assert secret is None or secret.get() not in consumer.log()

    opensearch_proxy.up()
    publish_records(settings, 10)
    # The broker's own offset-tracking entries take offsets too: 10 more records end past 19.
    wait_until("the next records consumed", lambda: stored_offset(settings, NAME),
               lambda stored: stored is not None and stored >= 19, 60)
    failures = len(summaries(consumer, day))
    later = wait_until(
        "a check that runs again",
        lambda: summaries(consumer, day)[failures:],
        lambda new: any("agree" in line for line in new) or not consumer.running(),
        120,
    )
    assert any("the index and the archive agree: 0 records" in line for line in later), later
    assert consumer.stop() == 0


def test_sigterm_kills_a_check_in_progress_and_exits_0(
    settings: Settings, start_consumer: StartConsumer, opensearch_proxy: TcpProxy
) -> None:
    day = the_day()
    create_stream(settings)
    through_proxy = {"OPENSEARCH_HOST": "127.0.0.1", "OPENSEARCH_PORT": str(opensearch_proxy.port)}
    consumer = start_consumer(*ARGS, "--log-level", "DEBUG", wrapper=QUICK, env=through_proxy)
    publish_records(settings, 5)
    wait_for_offset(settings, 4, 60)
    wait_for_summaries(consumer, day, 1)

    # OpenSearch hangs: a check now waits on it (verify's client gives up only after 60 s).
    opensearch_proxy.hang()
    seen = len(summaries(consumer, day))
    started = re.compile(rf"verify {day}: started \(process (\d+)\)")

    def hanging_check() -> int | None:
        log = consumer.log()
        matches = list(started.finditer(log))
        # A check started after every summary so far: in progress.
        if len(summaries(consumer, day)) == seen and len(matches) > seen:
            return int(matches[-1].group(1))
        return None

    pid = wait_until("a check in progress", hanging_check, lambda found: found is not None, 60)
    assert pid is not None
    assert consumer.stop() == 0
    assert f"verify {day}: stopped (process {pid})" in consumer.log()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
