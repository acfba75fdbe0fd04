"""The reindex checkpoint on a local disk: what it keeps, what it ignores, its lock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from audit_logging.archive.checkpoint import Checkpoint, CheckpointBusyError
from audit_logging.archive.layout import ArchiveFile, archive_key, parse_key

PREFIX = "logs/"
IDENTITY = {"opensearch": "localhost:9200", "index_prefix": "audit", "bucket": "b",
            "s3_prefix": PREFIX}
COUNTS = {"records": 10, "indexed": 7, "present": 3, "differing": 1, "refused": 0}


def file(day: str, first: int, size: int = 1234) -> ArchiveFile:
    found = parse_key(PREFIX, archive_key(PREFIX, "s", day, first, first + 9), size)
    assert found is not None
    return found


def test_finished_files_count_only_with_the_same_size_and_index(tmp_path: Path) -> None:
    one, two = file("2025-03-01", 0), file("2025-03-02", 10)
    checkpoint = Checkpoint(tmp_path, IDENTITY)
    checkpoint.open()
    checkpoint.mark(one, "uuid-a", COUNTS)
    checkpoint.close()
    # A kill in the middle of a line leaves a partial last line: ignored.
    with open(checkpoint.path, "ab") as handle:
        handle.write(b'{"key":"' + two.key.encode())

    again = Checkpoint(tmp_path, IDENTITY)
    again.open()
    found = again.finished(one, "uuid-a")
    assert found is not None and dict(found.counts) == COUNTS
    assert again.finished(one, "uuid-b") is None  # the index was made again since
    assert again.finished(one, None) is None  # or is gone
    assert again.finished(file("2025-03-01", 0, size=999), "uuid-a") is None
    assert again.finished(two, "uuid-a") is None
    again.mark(two, "uuid-a", COUNTS)
    again.close()
    third = Checkpoint(tmp_path, IDENTITY)
    third.open()
    assert third.finished(one, "uuid-a") is not None
    assert third.finished(two, "uuid-a") is not None  # written after the torn line was cut
    third.close()
    assert len(checkpoint.path.read_text().splitlines()) == 3


def test_another_target_has_its_own_file_and_a_held_one_is_refused(tmp_path: Path) -> None:
    first = Checkpoint(tmp_path, IDENTITY)
    first.open()
    other = Checkpoint(tmp_path, {**IDENTITY, "index_prefix": "other"})
    other.open()
    assert other.path != first.path
    with pytest.raises(CheckpointBusyError, match="another reindex"):
        Checkpoint(tmp_path, IDENTITY).open()
    first.close()
    other.close()


def test_a_completed_range_is_forgotten_and_an_empty_file_removed(tmp_path: Path) -> None:
    march, april = file("2025-03-31", 0), file("2025-04-01", 10)
    checkpoint = Checkpoint(tmp_path, IDENTITY)
    checkpoint.open()
    checkpoint.mark(march, "u", COUNTS)
    checkpoint.mark(april, "u", COUNTS)
    checkpoint.complete(dt.date(2025, 4, 1), dt.date(2025, 4, 30))
    assert checkpoint.finished(april, "u") is None
    checkpoint.close()
    reread = Checkpoint(tmp_path, IDENTITY)
    reread.open()
    assert reread.finished(march, "u") is not None
    assert reread.finished(april, "u") is None
    reread.complete(dt.date(2025, 3, 1), dt.date(2025, 3, 31))
    reread.close()
    assert not reread.path.exists()
