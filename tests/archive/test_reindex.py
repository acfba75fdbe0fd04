"""``python -m audit_logging.archive reindex`` against the real S3 and OpenSearch: a lost index
comes back holding exactly the archived records (and searches the same), a killed run resumes
without duplicates or gaps, nothing already indexed is overwritten, and bad options and dead
services end it with a named reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.archive import cli
from audit_logging.archive.checkpoint import Checkpoint
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.search_index import index_for, index_pattern
from audit_logging.settings import Secret, Settings
from tests._stack import opensearch_client
from tests.archive._archive import (
    archive_command,
    command_env,
    put_archive,
    record_at,
    start_archive_command,
)

pytestmark = pytest.mark.services

TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
RECENT = TODAY - dt.timedelta(days=3) + dt.timedelta(hours=20)  # within any retention
SEARCH = "/api/audit-logs/search/"


@pytest.fixture
def client(settings: Settings) -> Iterator[OpenSearch]:
    opensearch = opensearch_client(settings)
    yield opensearch
    opensearch.close()


def recent(count: int, every: dt.timedelta, **fields: Any) -> list[dict[str, Any]]:
    return [
        record_at(RECENT + every * i, object_id=f"obj_{i}", user_id=f"u{i % 4}",
                  action=("UPDATE", "CREATE", "DELETE")[i % 3],
                  change_message=f"Changed status of order {i}", **fields)
        for i in range(count)
    ]


def span(records: list[dict[str, Any]]) -> tuple[str, str]:
    return records[0]["timestamp"][:10], records[-1]["timestamp"][:10]


def reindex(settings: Settings, state: Path, *args: str) -> Any:
    return archive_command(settings, "reindex", "--state-dir", str(state), *args)


def indexed(client: OpenSearch, prefix: str) -> dict[str, dict[str, Any]]:
    """Every document of ``prefix``'s indices: _id → source (an _id met twice fails)."""
    client.indices.refresh(index=index_pattern(prefix), params={"allow_no_indices": "true"})
    found: dict[str, dict[str, Any]] = {}
    for hit in helpers.scan(client, index=index_pattern(prefix), size=5000,
                            allow_no_indices=True):
        assert hit["_id"] not in found, f"{hit['_id']} is indexed twice"
        found[hit["_id"]] = hit["_source"]
    return found


def api_answers(settings: Settings, queries: list[dict[str, str]]) -> list[Any]:
    token = secrets.token_hex(16)
    app = create_app(dataclasses.replace(settings, api_tokens=Secret(token)))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as http:
        answers = []
        for query in queries:
            response = http.get(SEARCH, params=query)
            assert response.status_code == 200, response.text
            answers.append(response.json())
        return answers


def test_a_deleted_index_comes_back_with_exactly_the_archived_records(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    settings = dataclasses.replace(settings, retention_months=12)
    records = recent(1500, dt.timedelta(minutes=2))  # over 3 days, several files a day
    old = [record_at(TODAY - dt.timedelta(days=800) + dt.timedelta(hours=i), object_id=f"old_{i}")
           for i in range(30)]
    put_archive(settings, records, per_file=120)
    put_archive(settings, old, first_offset=100_000)
    # Neither a dead letter (a whole record, as the consumer keeps one) nor a stray object in
    # a day's folder is an archive file.
    letter = record_at(RECENT, object_id="dead")
    s3 = make_s3_client(settings)
    bucket = str(settings.s3_bucket)
    s3.put_object(Bucket=bucket, Key=f"{settings.s3_prefix}dead-letter/audit_logs_stream-"
                  f"{0:020d}-{0:020d}.ndjson", Body=json.dumps(letter).encode())
    day_dir = f"{settings.s3_prefix}year={RECENT:%Y}/month={RECENT:%m}/day={RECENT:%d}/"
    s3.put_object(Bucket=bucket, Key=day_dir + "notes.txt", Body=b"not a record")
    first, _ = span(records)
    until = TODAY.date().isoformat()
    state = tmp_path / "state"

    done = reindex(settings, state, "--since", "2020-01-01", "--until", until)
    assert done.returncode == cli.EXIT_OK, done.stderr
    assert "AUDIT_LOG_RETENTION_MONTHS" in done.stderr and "skipping 2020-01-01" in done.stderr
    assert f"{len(records):,} indexed" in done.stdout
    assert first in done.stdout  # a row per day
    prefix = settings.opensearch_index_prefix
    by_id = {r["log_id"]: r for r in records}
    assert indexed(client, prefix) == by_id
    queries = [
        {"user_id": "u1", "page_size": "100"},
        {"search_term": "status order", "page_size": "100", "from_offset": "40"},
        {"action": "DELETE", "start_time": records[100]["timestamp"],
         "end_time": records[900]["timestamp"], "page_size": "100"},
    ]
    before = api_answers(settings, queries)
    assert all(answer["count"] > 0 for answer in before)

    client.indices.delete(index=index_pattern(prefix))
    assert indexed(client, prefix) == {}
    done = reindex(settings, state, "--since", first, "--until", until)
    assert done.returncode == cli.EXIT_OK, done.stderr
    assert f"{len(records):,} indexed, 0 already there, 0 refused" in done.stdout
    assert indexed(client, prefix) == by_id  # no dead letter, no old record, nothing twice
    assert api_answers(settings, queries) == before
    assert not list(state.glob("*.jsonl"))  # a finished run leaves no progress behind


def stop_midway(running: subprocess.Popen[str], state: Path, stop: signal.Signals) -> None:
    """Send ``stop`` once the run recorded 6 finished archive files."""
    try:
        finished = 0
        deadline = time.monotonic() + 300
        while finished < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
            files = list(state.glob("*.jsonl"))
            finished = len(files[0].read_text().splitlines()) - 1 if files else 0
            assert running.poll() is None, "the reindex ended before it could be stopped"
        assert finished >= 6, "no progress seen"
    finally:
        running.send_signal(stop)
        running.wait(timeout=120)


def test_a_killed_reindex_resumes_without_duplicates_or_gaps(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    records = recent(12_000, dt.timedelta(seconds=12))
    keys = put_archive(settings, records, per_file=100)
    first, last = span(records)
    state = tmp_path / "state"
    args = ("reindex", "--since", first, "--until", last, "--state-dir", str(state),
            "--readers", "1", "--bulk-mib", "1")
    stop_midway(start_archive_command(settings, *args), state, signal.SIGKILL)
    prefix = settings.opensearch_index_prefix
    halfway = indexed(client, prefix)
    assert 600 <= len(halfway) < len(records)

    done = archive_command(settings, *args)
    assert done.returncode == cli.EXIT_OK, done.stderr
    resumed = re.search(r"reindex: (\d+) archive files were finished by an earlier, "
                        r"interrupted run and skipped", done.stderr)
    assert resumed, done.stderr
    assert int(resumed.group(1)) >= 6
    total = done.stdout.splitlines()[-2].split()
    assert total[0] == "total"
    assert total[1:3] == [f"{len(keys):,}", f"{len(records):,}"]  # files, records
    # As an uninterrupted run reports: what the killed run wrote past its last finished file
    # is found there now.
    assert int(total[3].replace(",", "")) + int(total[4].replace(",", "")) == len(records)
    after = indexed(client, prefix)
    assert after == {r["log_id"]: r for r in records}
    count = client.count(index=index_pattern(prefix))["count"]
    assert count == len(records)  # each log_id once, in one monthly index


def test_an_interrupted_reindex_exits_3_and_keeps_what_it_finished(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    records = recent(12_000, dt.timedelta(seconds=12))
    put_archive(settings, records, per_file=100)
    first, last = span(records)
    state = tmp_path / "state"
    args = ("reindex", "--since", first, "--until", last, "--state-dir", str(state),
            "--readers", "1", "--bulk-mib", "1")
    stderr = tmp_path / "stderr"
    running = start_archive_command(settings, *args, stderr=stderr)
    stop_midway(running, state, signal.SIGINT)
    assert running.returncode == cli.EXIT_FAILED
    assert stderr.read_text().splitlines()[-1] == "reindex: interrupted"
    [kept] = state.glob("*.jsonl")
    finished = len(kept.read_text().splitlines()) - 1
    assert finished >= 6

    done = archive_command(settings, *args)
    assert done.returncode == cli.EXIT_OK, done.stderr
    assert f"reindex: {finished} archive files were finished by an earlier" in done.stderr
    assert indexed(client, settings.opensearch_index_prefix) == {r["log_id"]: r for r in records}


def test_a_record_already_in_the_index_is_never_overwritten(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    records = recent(200, dt.timedelta(minutes=7))
    put_archive(settings, records, per_file=50)
    first, last = span(records)
    state = tmp_path / "state"
    assert reindex(settings, state, "--since", first, "--until", last).returncode == 0
    changed = dict(records[17], object_repr="changed in the index")
    prefix = settings.opensearch_index_prefix
    client.index(index=index_for(prefix, changed["timestamp"]), id=changed["log_id"],
                 body=changed, refresh=True)

    done = reindex(settings, state, "--since", first, "--until", last)
    assert done.returncode == cli.EXIT_OK, done.stderr
    assert "0 indexed, 200 already there, 0 refused" in done.stdout
    assert "1 records the index holds differ from the archive's" in done.stderr
    assert changed["log_id"] in done.stderr
    held = indexed(client, prefix)
    assert held[changed["log_id"]]["object_repr"] == "changed in the index"
    assert {k: v for k, v in held.items() if k != changed["log_id"]} == {
        r["log_id"]: r for r in records if r["log_id"] != changed["log_id"]
    }


def test_bad_options_name_the_option_and_exit_2(settings: Settings, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    days = ("--since", "2025-01-01", "--until", "2025-01-02")
    cases = {
        (*days, "--index-prefix", "Not A Prefix"): "--index-prefix",
        (*days, "--readers", "0"): "--readers 0 is out of range",
        (*days, "--readers", "many"): "--readers",
        (*days, "--bulk-mib", "1000"): "--bulk-mib 1000 is out of range",
        (*days, "--state-dir", str(a_file)): "--state-dir",
        ("--since", "yesterday", "--until", "2025-01-02"): "--since",
        ("--since", "2025-01-01"): "--until",
    }
    for args, message in cases.items():
        done = archive_command(settings, "reindex", *args)
        assert done.returncode == cli.EXIT_USAGE, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_second_run_of_the_same_reindex_is_refused(settings: Settings, tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = Checkpoint(state, {
        "opensearch": f"{settings.opensearch_host}:{settings.opensearch_port}",
        "index_prefix": settings.opensearch_index_prefix,
        "bucket": str(settings.s3_bucket),
        "s3_prefix": settings.s3_prefix,
    })
    holder.open()
    day = RECENT.date().isoformat()
    try:
        done = reindex(settings, state, "--since", day, "--until", day)
    finally:
        holder.close()
    assert done.returncode == cli.EXIT_USAGE, done.stderr
    assert "--state-dir: another reindex" in done.stderr


@pytest.mark.parametrize("service", ["OpenSearch", "S3"])
def test_an_unreachable_service_exits_3_with_one_line(
    settings: Settings, tmp_path: Path, service: str,
) -> None:
    records = recent(10, dt.timedelta(minutes=1))
    put_archive(settings, records)
    env = command_env(settings)
    if service == "OpenSearch":
        env["OPENSEARCH_PORT"] = "9"  # nothing listens there
    else:
        env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"
    first, last = span(records)
    done = archive_command(settings, "reindex", "--since", first, "--until", last,
                           "--state-dir", str(tmp_path / "state"), env=env)
    assert done.returncode == cli.EXIT_FAILED, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("reindex: failed: ")]
    assert len(failed) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_record_the_index_refuses_is_named_and_the_run_exits_1(
    settings: Settings, client: OpenSearch, tmp_path: Path,
) -> None:
    records = recent(60, dt.timedelta(minutes=5))
    refused = records[47]  # in the third file: its position in a bulk of several differs
    refused["ip_address"] = "999.1.2.3"  # in the archive, but not an address the index takes
    put_archive(settings, records, per_file=20)
    first, last = span(records)
    done = reindex(settings, tmp_path / "state", "--since", first, "--until", last)
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    assert "59 indexed, 0 already there, 1 refused" in done.stdout
    assert f"the index refused 1 records: log_id {refused['log_id']}: " in done.stderr
    assert "mapper_parsing_exception" in done.stderr
    held = indexed(client, settings.opensearch_index_prefix)
    assert set(held) == {r["log_id"] for r in records} - {refused["log_id"]}

    # verify finds it missing, and a repair cannot mend it: the difference stays.
    repair = archive_command(settings, "verify", "--since", first, "--until", last, "--repair",
                             "--json")
    assert repair.returncode == cli.EXIT_DIFFERENCES, repair.stderr
    answer = json.loads(repair.stdout)
    assert answer["totals"]["missing_in_index"] == 1
    assert answer["totals"]["repaired"] == {"indexed": 0, "already_there": 0, "refused": 1}
    assert answer["agree"] is False
