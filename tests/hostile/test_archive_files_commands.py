"""Every object in ``archive_files/`` put under the archive's prefix in the real S3 server,
named like an archive file, beside good files of a day the index keeps, and ``verify`` and
``reindex`` run over that day as a user runs them (against the real OpenSearch too).

Neither may fail whole, blame S3 or check nothing else: the good files are checked (or indexed)
as usual, the hostile file is named in one bounded line (``verify --json``: its key and a
bounded reason), it is never read as records (``--repair`` takes nothing from it), and the
command exits 1. S3 failing, by contrast, still fails the command (exit 3).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers

from audit_logging.archive import cli, layout
from audit_logging.archive.checkpoint import Checkpoint
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.reindex import ArchiveFileError, Reindexer
from audit_logging.archive.store import ArchiveStore
from audit_logging.archive.verify import Verifier
from audit_logging.consumer.daily_verify import summary
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.search_index import index_for, index_pattern
from audit_logging.settings import Settings
from tests._stack import opensearch_client
from tests.archive._archive import STREAM, archive_command, command_env, put_archive, record_at
from tests.hostile.test_archive_files import corpus, load

pytestmark = [pytest.mark.services]
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
MOMENT = TODAY - dt.timedelta(days=3) + dt.timedelta(hours=9)  # a day the index keeps
DAY = MOMENT.date().isoformat()
LINE = 600  # the longest line a command may print about a file (key ≤ 300, reason ≤ 200)


@pytest.fixture
def retained(settings: Settings) -> Settings:
    """This test's settings, with a retention that keeps the day's month in the index."""
    return dataclasses.replace(settings, retention_months=12)


@pytest.fixture
def opensearch(settings: Settings) -> Iterator[OpenSearch]:
    client = opensearch_client(settings)
    yield client
    client.close()


def day_with_hostile_file(
    settings: Settings, damage: Any, *, offsets: tuple[int, int] = (100, 102),
    moment: dt.datetime = MOMENT,
) -> tuple[list[dict[str, Any]], str]:
    """Six good records of ``moment``'s day in two files (offsets 0-5) and the hostile object,
    made by ``damage`` from a good file's bytes, at ``offsets`` of the same day; the records
    and its key."""
    records = [record_at(moment + dt.timedelta(minutes=i), object_id=f"good_{i}")
               for i in range(6)]
    keys = put_archive(settings, records, per_file=3)
    s3 = make_s3_client(settings)
    good = s3.get_object(Bucket=str(settings.s3_bucket), Key=keys[0])["Body"].read()
    day = moment.date().isoformat()
    hostile = layout.archive_key(settings.s3_prefix, STREAM, day, *offsets)
    s3.put_object(Bucket=str(settings.s3_bucket), Key=hostile, Body=damage(good))
    return records, hostile


def indexed_ids(client: OpenSearch, prefix: str) -> list[str]:
    client.indices.refresh(index=index_pattern(prefix), params={"allow_no_indices": "true"})
    return sorted(hit["_id"] for hit in helpers.scan(
        client, index=index_pattern(prefix), _source=False, allow_no_indices=True))


def named_once(output: str, hostile: str, start: str) -> str:
    """The one line of ``output`` that names ``hostile``, which must start with ``start``."""
    lines = [line for line in output.splitlines() if hostile in line]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"{start}archive file {hostile} cannot be read: "), lines[0]
    return lines[0]


def bounded(*outputs: str) -> None:
    for output in outputs:
        assert "Traceback" not in output
        assert all(len(line) < LINE for line in output.splitlines()), output


def ids(records: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(r["log_id"] for r in records)


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_reindex_and_verify_check_the_good_files_and_name_the_hostile_one(
    retained: Settings, opensearch: OpenSearch, path: Path, tmp_path: Path,
) -> None:
    settings = retained
    records, hostile = day_with_hostile_file(settings, load(path).damage)
    prefix = settings.opensearch_index_prefix
    state = str(tmp_path / "state")
    reindex = ("reindex", "--since", DAY, "--until", DAY, "--state-dir", state)

    done = archive_command(settings, *reindex)
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    named_once(done.stderr, hostile, "reindex: passed over: ")
    assert "6 records of 2 archive files" in done.stdout
    assert "6 indexed, 0 already there, 0 refused, 1 unreadable files passed over" in done.stdout
    assert "1 archive file(s) could not be read" in done.stderr
    bounded(done.stdout, done.stderr)
    assert indexed_ids(opensearch, prefix) == ids(records)
    # Never recorded as finished: a second run reads it again and names it again.
    again = archive_command(settings, *reindex)
    assert again.returncode == cli.EXIT_DIFFERENCES, again.stderr
    named_once(again.stderr, hostile, "reindex: passed over: ")
    assert "0 indexed, 6 already there, 0 refused, 1 unreadable" in again.stdout

    machine = archive_command(settings, "verify", "--since", DAY, "--until", DAY, "--json")
    assert machine.returncode == cli.EXIT_DIFFERENCES, machine.stderr
    bounded(machine.stderr)
    answer = json.loads(machine.stdout)
    [entry] = answer["days"]
    assert entry["files"] == 3 and entry["archived"] == 6 and entry["indexed"] == 6
    for kind in ("missing_in_index", "missing_in_archive", "duplicates", "offset_problems"):
        assert entry[kind] == {"count": 0, "sample": []}, kind
    [unreadable] = entry["unreadable_files"]["sample"]
    assert entry["unreadable_files"]["count"] == 1
    assert unreadable["key"] == hostile
    assert 0 < len(unreadable["reason"]) <= 200 and "\n" not in unreadable["reason"]
    assert entry["agree"] is False and answer["agree"] is False
    assert answer["totals"]["unreadable_files"] == 1 and answer["totals"]["archived"] == 6
    # The consumer's --verify-every reads this very answer into its one line.
    level, line = summary(MOMENT.date(), answer, 1.0)
    assert level == logging.WARNING
    assert "6 records in the archive (3 files), 6 in the index" in line
    assert "offset problems 0, unreadable files 1" in line and hostile not in line

    human = archive_command(settings, "verify", "--since", DAY, "--until", DAY)
    assert human.returncode == cli.EXIT_DIFFERENCES, human.stderr
    assert "unreadable files" in human.stdout.splitlines()[0]  # the table's header
    named_once(human.stdout, hostile, f"{DAY} unreadable file: ")
    assert "1 archive file(s) could not be read" in human.stdout
    assert "differences on 1 of 1 days" in human.stdout
    bounded(human.stdout, human.stderr)

    # --repair mends what the index misses from the good files, and cannot mend the file.
    lost = records[4]
    opensearch.delete(index=index_for(prefix, lost["timestamp"]), id=lost["log_id"],
                      refresh=True)
    repair = archive_command(settings, "verify", "--since", DAY, "--until", DAY, "--repair",
                             "--json")
    assert repair.returncode == cli.EXIT_DIFFERENCES, repair.stderr
    repaired = json.loads(repair.stdout)
    assert repaired["totals"]["missing_in_index"] == 1
    assert repaired["totals"]["repaired"] == {"indexed": 1, "already_there": 0, "refused": 0}
    assert repaired["totals"]["unreadable_files"] == 1 and repaired["agree"] is False
    assert indexed_ids(opensearch, prefix) == ids(records)


def test_an_unreadable_files_name_still_takes_part_in_the_offset_checks(
    retained: Settings,
) -> None:
    # Named for offsets 1 to 4 of the day, which the two good files (0-2, 3-5) hold: what the
    # names alone prove is found; its rows, unknown, add no other problem.
    records, hostile = day_with_hostile_file(
        retained, lambda good: good[: len(good) // 2], offsets=(1, 4))
    done = archive_command(retained, "verify", "--since", DAY, "--until", DAY, "--json")
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    [entry] = json.loads(done.stdout)["days"]
    assert entry["archived"] == len(records)
    assert entry["unreadable_files"]["count"] == 1
    problems = entry["offset_problems"]
    assert problems["count"] == 2, problems
    assert all(hostile in text and "claim the same offsets on one day" in text
               for text in problems["sample"]), problems
    assert not any("rows for" in text for text in problems["sample"])


def test_a_day_the_index_no_longer_keeps_names_the_file_too(settings: Settings) -> None:
    moment = TODAY - dt.timedelta(days=800)
    records, hostile = day_with_hostile_file(settings, lambda good: b"", moment=moment)
    day = moment.date().isoformat()
    done = archive_command(settings, "verify", "--since", day, "--until", day, "--json")
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    [entry] = json.loads(done.stdout)["days"]
    assert entry["index_checked"] is False and entry["archived"] == len(records)
    assert [u["key"] for u in entry["unreadable_files"]["sample"]] == [hostile]
    assert entry["agree"] is False


class _VanishingStore(ArchiveStore):
    """Lists the day's files, then deletes ``gone`` before it is read: S3 failing on one read
    (a lifecycle rule or an operator removing the object meanwhile), not bad bytes."""

    def __init__(self, settings: Settings, gone: str) -> None:
        super().__init__(settings, cache_bytes=0)
        self.gone = gone
        self.s3 = make_s3_client(settings)

    def files(self, first: dt.date, last: dt.date) -> list[ArchiveFile]:
        listed = super().files(first, last)
        self.s3.delete_object(Bucket=self.bucket, Key=self.gone)
        return listed


def test_s3_failing_on_a_read_is_no_unreadable_file_but_a_failure(
    retained: Settings, opensearch: OpenSearch, tmp_path: Path,
) -> None:
    records = [record_at(MOMENT + dt.timedelta(minutes=i)) for i in range(6)]
    keys = put_archive(retained, records, per_file=3)
    store = _VanishingStore(retained, keys[1])
    prefix = retained.opensearch_index_prefix
    verifier = Verifier(store, opensearch, prefix, index_from=MOMENT.date())
    # S3 answers that the object does not exist (pyarrow: an OSError naming it), raised as it
    # comes: never an unreadable file of the day.
    with pytest.raises(OSError, match=re.escape(keys[1])):
        verifier.check(MOMENT.date(), MOMENT.date())

    put_archive(retained, records, per_file=3)  # both files back, then one gone again
    checkpoint = Checkpoint(tmp_path / "state", {"index_prefix": prefix})
    checkpoint.open()
    reindexer = Reindexer(store, opensearch, prefix, checkpoint)
    try:
        with pytest.raises(ArchiveFileError, match=f"reading s3://{store.bucket}/"):
            reindexer.run(store.files(MOMENT.date(), MOMENT.date()))
    finally:
        checkpoint.close()
    assert reindexer.unreadable == []


@pytest.mark.parametrize("command", ["verify", "reindex"])
def test_s3_unreachable_still_exits_3_blaming_s3(
    retained: Settings, tmp_path: Path, command: str,
) -> None:
    put_archive(retained, [record_at(MOMENT)])
    env = command_env(retained)
    env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"  # nothing listens there
    extra = ["--state-dir", str(tmp_path / "state")] if command == "reindex" else []
    done = archive_command(retained, command, "--since", DAY, "--until", DAY, *extra, env=env)
    assert done.returncode == cli.EXIT_FAILED, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith(f"{command}: ")]
    assert len(failed) == 1, done.stderr
    assert failed[0].startswith(f"{command}: failed: S3 (s3://{retained.s3_bucket}/")
    assert "cannot be read" not in done.stderr and "Traceback" not in done.stderr


def test_an_interrupted_reindex_never_records_the_unreadable_file_as_finished(
    retained: Settings, opensearch: OpenSearch, tmp_path: Path,
) -> None:
    records, hostile = day_with_hostile_file(retained, lambda good: b"not parquet" * 10)
    store = ArchiveStore(retained, cache_bytes=0)
    prefix = retained.opensearch_index_prefix
    checkpoint = Checkpoint(tmp_path / "state", {"index_prefix": prefix,
                                                 "s3_prefix": retained.s3_prefix})
    checkpoint.open()
    files = store.files(MOMENT.date(), MOMENT.date())
    try:
        days = Reindexer(store, opensearch, prefix, checkpoint).run(files)
    finally:
        checkpoint.close()  # as a run killed before it completes leaves it
    tally = days[MOMENT.date()]
    assert (tally.files, tally.indexed, tally.unreadable) == (2, len(records), 1)
    recorded = [json.loads(line)["key"] for line in
                checkpoint.path.read_text().splitlines()[1:]]
    assert sorted(recorded) == sorted(f.key for f in files if f.key != hostile)

    # Resumed: the finished files are skipped, the unreadable one is read and named again.
    resumed = Checkpoint(tmp_path / "state", checkpoint.identity)
    resumed.open()
    reindexer = Reindexer(store, opensearch, prefix, resumed)
    try:
        again = reindexer.run(files)[MOMENT.date()]
    finally:
        resumed.close()
    assert (again.resumed_files, again.unreadable) == (2, 1)
    assert [u.key for u in reindexer.unreadable] == [hostile]
