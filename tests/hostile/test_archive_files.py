"""Every object in ``archive_files/`` put under the archive's prefix in the real S3 server,
named like an archive file, beside good files of the same day.

Anyone with write access to the bucket can put anything there, and bytes rot. A search must
pass such a file over and say so (never fail whole, never count it); an export writes every
readable record, names the file and exits 1; a detail whose record is in a good file still
finds it, and one that is not found says the day could not be read whole instead of "none".
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from audit_logging._uuid7 import uuid7_at
from audit_logging.archive import cli, layout
from audit_logging.archive.search import ArchiveSearch
from audit_logging.archive.store import ArchiveStore, UnreadableFileError
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record_filter import RecordFilter, TimeBound
from audit_logging.settings import Settings
from tests.archive._archive import STREAM, archive_command, put_archive, record_at

pytestmark = [pytest.mark.services]
CORPUS = Path(__file__).parent / "archive_files"
DAY = dt.datetime(2024, 6, 3, 9, 0, tzinfo=dt.UTC)


def corpus() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.py") if p.name != "__init__.py")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hostile_archive_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_a_hostile_file_is_passed_over_and_named(
    settings: Settings, path: Path, tmp_path: Path,
) -> None:
    records = [record_at(DAY + dt.timedelta(minutes=i), object_id=f"good_{i}") for i in range(6)]
    keys = put_archive(settings, records, per_file=3)
    client = make_s3_client(settings)
    good = client.get_object(Bucket=str(settings.s3_bucket), Key=keys[0])["Body"].read()
    hostile = layout.archive_key(settings.s3_prefix, STREAM, DAY.date().isoformat(), 100, 102)
    client.put_object(Bucket=str(settings.s3_bucket), Key=hostile, Body=load(path).damage(good))

    searcher = ArchiveSearch(ArchiveStore(settings))
    day = RecordFilter(start=TimeBound(DAY - dt.timedelta(hours=1)))
    page = searcher.page(day, offset=0, size=10)
    assert page.total == 6
    assert sorted(r["object_id"] for r in page.records) == sorted(r["object_id"] for r in records)
    assert page.unreadable == (hostile,)

    assert searcher.find(records[4]["log_id"]) == records[4]
    absent = uuid7_at(DAY + dt.timedelta(minutes=30))
    if path.stem == "another_schema":
        # Its footer is readable, and its statistics rule the log_id out: truly not there.
        assert searcher.find(absent) is None
    else:
        with pytest.raises(UnreadableFileError) as raised:
            searcher.find(absent)
        assert raised.value.key == hostile and "\n" not in str(raised.value)

    target = tmp_path / "out.ndjson"
    done = archive_command(settings, "export", "--since", "2024-06-03", "--until", "2024-06-03",
                           "-o", str(target))
    assert done.returncode == cli.EXIT_DIFFERENCES, done.stderr
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(r["log_id"] for r in exported) == sorted(r["log_id"] for r in records)
    assert f"passed over: archive file {hostile}" in done.stderr
    assert "Traceback" not in done.stderr
    assert all(len(line) < 600 for line in done.stderr.splitlines())

