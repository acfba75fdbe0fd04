"""``python -m audit_logging.archive export`` against the real S3: every format round-trips to
the same records, filters are the API's, and a failed export leaves no file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from audit_logging.archive import cli
from audit_logging.archive.parquet import records_from_table
from audit_logging.archive.store import ArchiveStore
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.schema import FIELD_NAMES as FIELDS
from audit_logging.session_key import stored_session_key
from audit_logging.settings import Settings
from tests.archive._archive import command_env, put_archive, record_at

pytestmark = pytest.mark.services

START = dt.datetime(2025, 1, 30, 12, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[2]


def env_of(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_LOG_", "AWS_"))}
    secret = settings.aws_secret_access_key
    env.update({
        "AUDIT_LOG_AWS_S3_BUCKET": str(settings.s3_bucket),
        "AUDIT_LOG_S3_PREFIX": settings.s3_prefix,
        "AWS_ENDPOINT_URL_S3": str(settings.aws_endpoint_url_s3),
        "AWS_ACCESS_KEY_ID": str(settings.aws_access_key_id),
        "AWS_SECRET_ACCESS_KEY": secret.get() if secret else "",
        "AWS_REGION_NAME": settings.aws_region_name or "us-east-1",
    })
    if settings.hash_key is not None:
        env["AUDIT_LOG_HASH_KEY"] = settings.hash_key.get()
    return env


def export(settings: Settings, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "audit_logging.archive", "export", *args],
                          env=env_of(settings), cwd=REPO, capture_output=True, timeout=600,
                          check=False)


# What a spreadsheet runs as a formula (OWASP's CSV injection list), stated here rather than
# taken from the code under test.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Values a spreadsheet would run as a formula, and one that starts with the escape itself.
FORMULAS = ("=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)",
            "\t=1+1", "\r=1+1", "'=kept as typed")


def many(count: int) -> list[dict[str, Any]]:
    # About 3 days: several day files, and records with every kind of field.
    return [
        record_at(START + dt.timedelta(seconds=2.5 * i), object_id=f"obj_{i}",
                  user_id=f"u{i % 3}", changes={"n": [i, i + 1]} if i % 2 else None,
                  extra={"i": i, "tags": ["a", "é"]} if i % 5 == 0 else None,
                  object_repr=f'Quote "{i}", comma' if i % 4 else FORMULAS[i // 4 % 7] + str(i),
                  request_id=f"req-{i}")
        for i in range(count)
    ]


@pytest.mark.parametrize("form", ["ndjson", "csv", "parquet"])
def test_one_hundred_thousand_records_round_trip_in_each_format(
    settings: Settings, tmp_path: Path, form: str,
) -> None:
    records = many(100_000)
    put_archive(settings, records, per_file=5000)
    target = tmp_path / f"out.{form}"
    done = export(settings, "--since", "2025-01-30", "--until", "2025-02-28",
                  "--format", form, "-o", str(target))
    assert done.returncode == 0, done.stderr.decode()
    assert b"100,000 records" in done.stderr
    assert read_back(target, form) == sorted(records, key=lambda r: (r["timestamp"], r["log_id"]))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no partial file left


def read_back(path: Path, form: str) -> list[dict[str, Any]]:
    if form == "ndjson":
        return [json.loads(line) for line in path.read_bytes().splitlines()]
    if form == "parquet":
        return records_from_table(pq.read_table(path))
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert rows[0] == list(FIELDS)
    records = []
    for row in rows[1:]:
        record: dict[str, Any] = {}
        for name, escaped in zip(FIELDS, row, strict=True):
            # No cell a spreadsheet would run; one leading ' comes off to give the value.
            assert not escaped.startswith(FORMULA_STARTS), escaped
            cell = escaped.removeprefix("'")
            if cell == "":
                record[name] = None
            elif name in ("changes", "extra", "truncated"):
                record[name] = json.loads(cell)
            elif name == "schema_version":
                record[name] = int(cell)
            else:
                record[name] = cell
        records.append(record)
    return records


def test_filters_are_the_apis_and_the_session_is_looked_up_by_its_raw_key(
    settings: Settings, tmp_path: Path,
) -> None:
    raw = "sess-raw-4f1d"
    stored = stored_session_key(raw, settings.session_key_mode, settings.hash_key)
    records = [
        record_at(START, object_id="a", session_key=stored, request_id="r-1"),
        record_at(START + dt.timedelta(days=40), object_id="b", session_key=stored),
        record_at(START, object_id="c", source="billing"),
        record_at(START, object_id="d", change_message="Refund approved"),
    ]
    put_archive(settings, records)

    def ids(*args: str) -> list[str]:
        done = export(settings, "--since", "2025-01-01", "--until", "2025-12-31", *args)
        assert done.returncode == 0, done.stderr.decode()
        assert raw.encode() not in done.stdout + done.stderr
        return sorted(json.loads(line)["object_id"] for line in done.stdout.splitlines())

    assert ids("--session", raw) == ["a", "b"]
    assert ids("--session", "another") == []
    assert ids("--request-id", "r-1") == ["a"]
    assert ids("--source", "billing") == ["c"]
    assert ids("--search-term", "refund appr") == ["d"]
    assert ids("--object-id", "b", "--session", raw) == ["b"]


def test_bad_options_name_the_option_and_exit_2(settings: Settings, tmp_path: Path) -> None:
    cases = {
        ("--since", "yesterday", "--until", "2025-01-01"): b"--since",
        ("--since", "2025-02-01", "--until", "2025-01-01"): b"--since is after",
        ("--since", "2025-01-01", "--until", "2025-01-02", "--ip-address", "300.1.1.1"):
            b"--ip-address",
        ("--since", "2025-01-01", "--until", "2025-01-02", "--format", "parquet"):
            b"--format parquet needs --output",
        ("--since", "2025-01-01", "--until", "2025-01-02", "--user-id", "x" * 5000):
            b"--user-id",
    }
    for args, message in cases.items():
        done = export(settings, *args)
        assert done.returncode == cli.EXIT_USAGE, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert b"Traceback" not in done.stderr


def test_an_existing_file_is_never_overwritten(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "keep.ndjson"
    target.write_text("mine")
    done = export(settings, "--since", "2025-01-01", "--until", "2025-01-02", "-o", str(target))
    assert done.returncode == cli.EXIT_USAGE and b"exists" in done.stderr
    assert target.read_text() == "mine"


def test_an_unreachable_archive_exits_3_naming_the_failure(
    settings: Settings, tmp_path: Path,
) -> None:
    # The listing fails, before any output is opened: see the test below for a failure
    # after records were written.
    env = env_of(settings)
    env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"  # nothing listens there
    target = tmp_path / "out.ndjson"
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging.archive", "export", "--since", "2025-01-01",
         "--until", "2025-01-02", "-o", str(target)],
        env=env, cwd=REPO, capture_output=True, timeout=300, check=False)
    assert done.returncode == cli.EXIT_FAILED, done.stderr
    assert b"failed" in done.stderr and b"Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_archive_failing_midway_exits_3_and_leaves_no_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    first_day = [record_at(START + dt.timedelta(minutes=i), object_id=f"a{i}") for i in range(50)]
    next_day = [record_at(START + dt.timedelta(days=1, minutes=i)) for i in range(5)]
    put_archive(settings, [*first_day, *next_day], per_file=50)
    # S3 fails midway for real: once the export has listed the files, the next day's is
    # deleted, and its GET is refused after the first day's records were written.
    listed = ArchiveStore.files

    def list_then_lose_the_next_day(store: ArchiveStore, first: Any, last: Any) -> Any:
        found = listed(store, first, last)
        client = make_s3_client(settings)
        for file in found:
            if file.day > START.date():
                client.delete_object(Bucket=str(settings.s3_bucket), Key=file.key)
        return found

    monkeypatch.setattr(ArchiveStore, "files", list_then_lose_the_next_day)
    for name, value in command_env(settings).items():
        monkeypatch.setenv(name, value)
    span = ["export", "--since", "2025-01-30", "--until", "2025-01-31"]
    assert cli.main(span) == cli.EXIT_FAILED
    out, err = capfdbinary.readouterr()
    # Midway: the first day is out (on standard output nothing can take it back).
    assert len(out.splitlines()) == len(first_day)
    assert b"failed" in err and b"Traceback" not in err

    put_archive(settings, next_day, per_file=50, first_offset=50)
    target = tmp_path / "out.ndjson"
    assert cli.main([*span, "-o", str(target)]) == cli.EXIT_FAILED
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left beside it either


def test_another_exports_temporary_file_is_left_alone_and_a_missing_folder_is_named(
    settings: Settings, tmp_path: Path,
) -> None:
    put_archive(settings, [record_at(START, object_id="a")])
    target = tmp_path / "out.ndjson"
    other = tmp_path / ".out.ndjson.partial"  # an export to the same name, under way
    other.write_text("theirs")
    done = export(settings, "--since", "2025-01-30", "--until", "2025-01-30", "-o", str(target))
    assert done.returncode == 0, done.stderr.decode()
    assert other.read_text() == "theirs"
    assert [json.loads(line)["object_id"] for line in target.read_bytes().splitlines()] == ["a"]
    assert target.stat().st_mode & 0o077 == 0  # the owner's alone, like the records it holds
    done = export(settings, "--since", "2025-01-30", "--until", "2025-01-30",
                  "-o", str(tmp_path / "nowhere" / "out.ndjson"))
    assert done.returncode == cli.EXIT_USAGE and b"there is no folder" in done.stderr


def test_the_session_key_can_come_from_a_file_or_standard_input(
    settings: Settings, tmp_path: Path,
) -> None:
    raw = "sess-from-file-91c2"
    stored = stored_session_key(raw, settings.session_key_mode, settings.hash_key)
    put_archive(settings, [record_at(START, object_id="s", session_key=stored),
                           record_at(START, object_id="other")])
    key_file = tmp_path / "key"
    key_file.write_text(raw + "\n")
    span = ("--since", "2025-01-30", "--until", "2025-01-30")
    by_file = export(settings, *span, "--session-file", str(key_file))
    by_stdin = subprocess.run(
        [sys.executable, "-m", "audit_logging.archive", "export", *span, "--session-file", "-"],
        input=(raw + "\n").encode(), env=env_of(settings), cwd=REPO, capture_output=True,
        timeout=300, check=False)
    for done in (by_file, by_stdin):
        assert done.returncode == 0, done.stderr.decode()
        assert [json.loads(line)["object_id"] for line in done.stdout.splitlines()] == ["s"]
        assert raw.encode() not in done.stderr
    both = export(settings, *span, "--session", raw, "--session-file", str(key_file))
    assert both.returncode == cli.EXIT_USAGE and b"not both" in both.stderr
    missing = export(settings, *span, "--session-file", str(tmp_path / "none"))
    assert missing.returncode == cli.EXIT_USAGE and b"--session-file" in missing.stderr
