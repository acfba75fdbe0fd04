"""What the archive's file names and row counts prove about offsets (no services)."""

from __future__ import annotations

import datetime as dt

from audit_logging.archive.layout import archive_key, parse_key
from audit_logging.archive.offsets import FileSpan, named_offsets, offset_problems

PREFIX = "logs/"
D1, D2 = "2025-03-01", "2025-03-02"


def span(day: str, first: int, last: int, rows: int, *, stream: str = "s",
         named: tuple[str, int, int] | None = None) -> FileSpan:
    file = parse_key(PREFIX, archive_key(PREFIX, stream, day, first, last))
    assert file is not None
    return FileSpan(file, rows, named)


def texts(*spans: FileSpan) -> list[str]:
    return [problem.text for problem in offset_problems(spans)]


def test_a_batch_split_by_day_overlaps_without_a_problem() -> None:
    # One batch of offsets 0-99, records of two days interleaved: two overlapping files.
    assert texts(span(D1, 0, 98, 50), span(D2, 1, 99, 50), span(D1, 100, 199, 100)) == []
    # Other streams (partitions) have their own offsets.
    assert texts(span(D1, 0, 99, 100), span(D1, 0, 99, 100, stream="s-1")) == []


def test_more_rows_than_offsets_is_a_record_archived_twice() -> None:
    [alone] = texts(span(D1, 0, 9, 11))
    assert "11 rows for 10 offsets" in alone
    [together] = offset_problems([span(D1, 0, 98, 60), span(D2, 1, 99, 50)])
    assert together.day == dt.date(2025, 3, 1)
    assert "2 files hold 110 rows for 100 offsets" in together.text


def test_two_files_of_one_day_never_share_offsets() -> None:
    found = texts(span(D1, 0, 99, 10), span(D1, 50, 149, 10), span(D1, 150, 160, 5))
    assert len(found) == 1
    assert "s-00000000000000000000-00000000000000000099.parquet and" in found[0]
    assert "s-00000000000000000050-00000000000000000149.parquet claim the same offsets" in found[0]


def test_offsets_running_backwards_and_metadata_that_disagrees() -> None:
    assert "run backwards" in texts(span(D1, 9, 3, 1))[0]
    [renamed] = texts(span(D1, 0, 9, 5, named=("s", 100, 109)))
    assert "its metadata says stream 's', offsets 100 to 109" in renamed
    assert texts(span(D1, 0, 9, 5, named=("s", 0, 9))) == []


def test_metadata_is_read_only_when_the_consumer_wrote_it() -> None:
    assert named_offsets(None) is None
    assert named_offsets({b"ARROW:schema": b"..."}) is None
    assert named_offsets({b"audit_logging.stream": b"s", b"audit_logging.first_offset": b"7",
                          b"audit_logging.last_offset": b"9"}) == ("s", 7, 9)
