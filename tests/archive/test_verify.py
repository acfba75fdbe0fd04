"""``python -m audit_logging.archive verify`` against the real S3 and OpenSearch: each kind of
difference found and named, ``--repair`` mending what the index misses, the JSON's shape, and
the archive-only checks of days the index no longer keeps."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from opensearchpy import OpenSearch

from audit_logging.archive import cli, layout, parquet
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.search_index import index_for, index_pattern
from audit_logging.settings import Settings
from tests._stack import opensearch_client
from tests.archive._archive import STREAM, archive_command, command_env, put_archive, record_at

pytestmark = pytest.mark.services

TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
RECENT = TODAY - dt.timedelta(days=3) + dt.timedelta(hours=2)
DAY_KEYS = {"day", "files", "archived", "indexed", "index_checked", "missing_in_index",
            "missing_in_archive", "duplicates", "offset_problems", "unreadable_files",
            "repaired", "agree"}
TOTAL_KEYS = {"files", "archived", "indexed", "missing_in_index", "missing_in_archive",
              "duplicates", "offset_problems", "unreadable_files", "repaired"}


@pytest.fixture
def client(settings: Settings) -> Iterator[OpenSearch]:
    opensearch = opensearch_client(settings)
    yield opensearch
    opensearch.close()


def archived_and_indexed(settings: Settings, tmp_path: Path, count: int) -> list[dict[str, Any]]:
    """``count`` records over three days, archived in files of 40 and reindexed."""
    records = [record_at(RECENT + dt.timedelta(minutes=25) * i, object_id=f"obj_{i}")
               for i in range(count)]
    put_archive(settings, records, per_file=40)
    done = archive_command(settings, "reindex", "--since", days(records)[0], "--until",
                           days(records)[1], "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    return records


def days(records: list[dict[str, Any]]) -> tuple[str, str]:
    return records[0]["timestamp"][:10], records[-1]["timestamp"][:10]


def verify(settings: Settings, records: list[dict[str, Any]], *args: str) -> Any:
    first, last = days(records)
    return archive_command(settings, "verify", "--since", first, "--until", last, *args)


def keys_of(settings: Settings, day: str) -> list[str]:
    s3 = make_s3_client(settings)
    listed = s3.list_objects_v2(Bucket=str(settings.s3_bucket),
                                Prefix=layout.day_dir(settings.s3_prefix, day))
    return sorted(item["Key"] for item in listed.get("Contents", []))


def rewrite_without(settings: Settings, key: str, log_id: str) -> None:
    """Put ``key`` back without the row of ``log_id`` (the archive losing a record)."""
    s3 = make_s3_client(settings)
    bucket = str(settings.s3_bucket)
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    kept = table.filter(pc.field("log_id") != log_id)
    assert kept.num_rows == table.num_rows - 1
    s3.put_object(Bucket=bucket, Key=key, Body=parquet.parquet_bytes(kept))


def day_of(answer: dict[str, Any], day: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [entry for entry in answer["days"] if entry["day"] == day]
    assert len(found) == 1
    return found[0]


def test_each_difference_is_found_on_its_day_and_named_in_json(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    records = archived_and_indexed(settings, tmp_path, 150)
    unindexed, unarchived, twice = records[10], records[70], records[130]
    client.delete(index=index_for(settings.opensearch_index_prefix, unindexed["timestamp"]),
                  id=unindexed["log_id"], refresh=True)
    rewrite_without(settings, keys_of(settings, unarchived["timestamp"][:10])[0],
                    unarchived["log_id"])
    # The same record archived again in a file of its own, at offsets no file claims.
    put_archive(settings, [twice], first_offset=50_000)

    done = verify(settings, records, "--json")
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    answer = json.loads(done.stdout)
    assert answer["agree"] is False
    assert answer["index_prefix"] == settings.opensearch_index_prefix
    assert answer["archive"] == f"s3://{settings.s3_bucket}/{settings.s3_prefix}"
    assert [d["day"] for d in answer["days"]] == sorted({r["timestamp"][:10] for r in records})
    for entry in answer["days"]:
        assert set(entry) == DAY_KEYS
        assert entry["index_checked"] is True
        assert entry["repaired"] is None
    assert set(answer["totals"]) == TOTAL_KEYS
    expected = {
        "missing_in_index": (unindexed, 1),
        "missing_in_archive": (unarchived, 1),
        "duplicates": (twice, 1),
    }
    for kind, (record, count) in expected.items():
        entry = day_of(answer, record["timestamp"][:10])
        assert entry[kind] == {"count": count, "sample": [record["log_id"]]}, kind
        assert entry["agree"] is False
        assert answer["totals"][kind] == count
    assert answer["totals"]["offset_problems"] == 0
    assert answer["totals"]["unreadable_files"] == 0
    assert all(d["unreadable_files"] == {"count": 0, "sample": []} for d in answer["days"])
    assert answer["totals"]["archived"] == len(records)  # one lost, one twice
    assert answer["totals"]["indexed"] == len(records) - 1

    human = verify(settings, records)
    assert human.returncode == cli.EXIT_DIFFERENCES
    assert "missing in index" in human.stdout.splitlines()[0]
    assert f"missing in index: {unindexed['log_id']}" in human.stdout
    assert f"missing in archive: {unarchived['log_id']}" in human.stdout
    assert f"duplicates: {twice['log_id']}" in human.stdout
    assert "differences on 3 of" in human.stdout


def test_repair_indexes_what_the_index_misses_and_then_they_agree(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    records = archived_and_indexed(settings, tmp_path, 120)
    prefix = settings.opensearch_index_prefix
    lost = [*records[3:6], records[100]]
    for record in lost:
        client.delete(index=index_for(prefix, record["timestamp"]), id=record["log_id"])
    client.indices.refresh(index=index_pattern(prefix))
    assert verify(settings, records).returncode == cli.EXIT_DIFFERENCES

    repaired = verify(settings, records, "--repair", "--json")
    assert repaired.returncode == cli.EXIT_OK, repaired.stderr
    answer = json.loads(repaired.stdout)
    assert answer["agree"] is True
    assert answer["totals"]["missing_in_index"] == len(lost)
    assert answer["totals"]["repaired"] == {"indexed": len(lost), "already_there": 0,
                                            "refused": 0}
    first_day = day_of(answer, lost[0]["timestamp"][:10])
    assert first_day["repaired"] == {"indexed": 3, "already_there": 0, "refused": 0}

    again = verify(settings, records)
    assert again.returncode == cli.EXIT_OK, again.stdout
    assert "the index and the archive agree" in again.stdout
    for record in lost:
        held = client.get(index=index_for(prefix, record["timestamp"]), id=record["log_id"])
        assert held["_source"] == record


def test_days_the_index_no_longer_keeps_are_checked_in_the_archive_alone(
    settings: Settings, tmp_path: Path,
) -> None:
    old = TODAY - dt.timedelta(days=800)
    records = [record_at(old + dt.timedelta(minutes=10) * i) for i in range(30)]
    put_archive(settings, records, per_file=10)  # offsets 0-29, days apart
    day = records[0]["timestamp"][:10]
    s3 = make_s3_client(settings)
    extra = [record_at(old + dt.timedelta(minutes=1))]
    # A file of the same day claiming offsets an existing one holds, and one with more rows
    # than the offsets its name gives.
    for first, last, rows in ((5, 7, extra), (1000, 1000, [record_at(old), record_at(old)])):
        key = layout.archive_key(settings.s3_prefix, STREAM, day, first, last)
        s3.put_object(Bucket=str(settings.s3_bucket), Key=key,
                      Body=parquet.parquet_bytes(parquet.records_table(rows)))

    done = archive_command(settings, "verify", "--since", day, "--until", day, "--json",
                           env=command_env(settings))
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    answer = json.loads(done.stdout)
    [entry] = answer["days"]
    assert entry["index_checked"] is False and entry["indexed"] is None
    assert entry["missing_in_index"]["count"] == 0
    assert entry["archived"] == len(records) + 3
    problems = entry["offset_problems"]
    assert problems["count"] == 3, problems
    texts = problems["sample"]
    expected = (
        "-00000000000000000005-00000000000000000007.parquet claim the same offsets on one day",
        "offsets 0 to 9: 2 files hold 11 rows for 10 offsets (records archived twice)",
        "-00000000000000001000-00000000000000001000.parquet: 2 rows for 1 offsets",
    )
    for text in expected:
        assert sum(text in found for found in texts) == 1, (text, texts)

def test_bad_options_exit_2_and_an_unreachable_index_exits_3(settings: Settings) -> None:
    day = RECENT.date().isoformat()
    bad = archive_command(settings, "verify", "--since", day, "--until", day,
                          "--index-prefix", "UPPER")
    assert bad.returncode == cli.EXIT_USAGE and "--index-prefix" in bad.stderr
    bad = archive_command(settings, "verify", "--since", day, "--until", "soon")
    assert bad.returncode == cli.EXIT_USAGE and "--until" in bad.stderr
    env = command_env(settings)
    env["OPENSEARCH_PORT"] = "9"
    down = archive_command(settings, "verify", "--since", day, "--until", day, env=env)
    assert down.returncode == cli.EXIT_FAILED, down.stderr
    assert down.stderr.startswith("verify: failed: ") and "Traceback" not in down.stderr
