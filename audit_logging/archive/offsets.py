"""What the archive's own file names and row counts can prove about the stream's offsets.

Each archive file is named after the stream (or partition) its records were read from and the
offsets of its first and last record; the consumer writes one file per batch and record day,
and at start or takeover asks S3 which records of a replayed batch it holds already, so a
record is archived once (see ``audit_logging/consumer/ledger.py``). Every record has its own
offset, so for any set of files of one stream:

* a file cannot hold more rows than the offsets it names (``last - first + 1``), nor name
  offsets that run backwards;
* files whose offset ranges overlap (one batch split by day does that) cannot together hold
  more rows than the offsets they cover: more means some offsets were archived twice;
* two files of one day never overlap: a batch makes one file per day, batches do not share
  offsets, and a replayed record that S3 holds already is not written again;
* the offsets the consumer wrote into the file's metadata (``audit_logging.stream``,
  ``audit_logging.first_offset``, ``audit_logging.last_offset``) are the ones its name says;
  a file renamed or copied under another name does not pass (files without that metadata,
  written by other tools, are not checked for it).

What cannot be checked from the archive alone, and is not: whether every offset that held a
record is archived. Offsets without a row are normal: records dead-lettered (kept under
``dead-letter/``), resends dropped as duplicates, the broker's own entries between messages,
and records of days outside the range checked. Nor is the stream's stored offset read (that is
RabbitMQ's, and this check talks only to S3): records the consumer has not yet archived are
not a difference here. A stream deleted and made again under the same name restarts its
offsets, which these checks then report as overlaps.

A file whose name claims offsets but whose bytes cannot be read (damaged, not an archive file:
``verify`` names it as unreadable) takes part by its name alone: a name whose offsets run
backwards, and two files of one day claiming the same offsets, are found as for any file. Its
rows and metadata are unknown and count as none (``FileSpan(file, 0)``): the row checks are
then lower bounds, which can miss offsets archived twice across it and another file but never
report what is not so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence

from audit_logging.archive.layout import ArchiveFile

METADATA_KEYS = ("audit_logging.stream", "audit_logging.first_offset", "audit_logging.last_offset")


@dataclasses.dataclass(frozen=True)
class FileSpan:
    """An archive file, its row count, and (stream, first, last) as its metadata names them
    (None when it has none: see :func:`named_offsets`)."""

    file: ArchiveFile
    rows: int
    named: tuple[str, int, int] | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
    day: dt.date  # the day it is reported under (a cluster's first)
    text: str


def offset_problems(spans: Sequence[FileSpan]) -> list[Problem]:
    """Every breach of the rules above among ``spans``, by day then text."""
    problems = [p for span in spans for p in _file_problems(span)]
    by_stream: dict[str, list[FileSpan]] = {}
    for span in spans:
        if span.file.first_offset <= span.file.last_offset:
            by_stream.setdefault(span.file.stream, []).append(span)
    for stream, members in by_stream.items():
        for cluster in _clusters(members):
            problems.extend(_cluster_problems(stream, cluster))
    return sorted(problems, key=lambda p: (p.day, p.text))


def _file_problems(span: FileSpan) -> Iterator[Problem]:
    file = span.file
    width = file.last_offset - file.first_offset + 1
    if width <= 0:
        yield Problem(file.day, f"{file.key}: its offsets run backwards "
                                f"({file.first_offset} to {file.last_offset})")
    elif span.rows > width:
        yield Problem(file.day, f"{file.key}: {span.rows:,} rows for {width:,} offsets "
                                "(records archived twice)")
    named = span.named
    if named is not None and named != (file.stream, file.first_offset, file.last_offset):
        stream, first, last = named
        yield Problem(file.day, f"{file.key}: its metadata says stream {stream!r}, offsets "
                                f"{first} to {last} (renamed or copied?)")


def named_offsets(metadata: Mapping[bytes, bytes] | None) -> tuple[str, int, int] | None:
    """(stream, first, last) as the consumer wrote them into a file's footer, if it did."""
    if metadata is None:
        return None
    values = [metadata.get(key.encode()) for key in METADATA_KEYS]
    if any(value is None for value in values):
        return None
    stream, first, last = (bytes(value or b"").decode("utf-8", "replace") for value in values)
    try:
        return stream, int(first), int(last)
    except ValueError:
        return stream, -1, -1


def _clusters(spans: list[FileSpan]) -> Iterator[list[FileSpan]]:
    """Runs of files whose offset ranges overlap, one stream's, by first offset."""
    ordered = sorted(spans, key=lambda s: (s.file.first_offset, s.file.last_offset))
    cluster: list[FileSpan] = []
    end = -1
    for span in ordered:
        if cluster and span.file.first_offset > end:
            yield cluster
            cluster = []
        end = max(end, span.file.last_offset) if cluster else span.file.last_offset
        cluster.append(span)
    if cluster:
        yield cluster


def _cluster_problems(stream: str, cluster: list[FileSpan]) -> Iterator[Problem]:
    if len(cluster) < 2:
        return
    first = cluster[0].file.first_offset
    last = max(s.file.last_offset for s in cluster)
    rows = sum(s.rows for s in cluster)
    day = min(s.file.day for s in cluster)
    if rows > last - first + 1:
        yield Problem(day, f"stream {stream!r} offsets {first} to {last}: {len(cluster)} files "
                           f"hold {rows:,} rows for {last - first + 1:,} offsets "
                           "(records archived twice)")
    by_day: dict[dt.date, list[FileSpan]] = {}
    for span in cluster:
        by_day.setdefault(span.file.day, []).append(span)
    for same_day in by_day.values():
        reach: FileSpan | None = None  # the file reaching furthest so far
        for span in same_day:  # still by first offset
            if reach is not None and span.file.first_offset <= reach.file.last_offset:
                yield Problem(span.file.day, f"{reach.file.key} and {span.file.key} claim the "
                                             "same offsets on one day (written twice)")
            if reach is None or span.file.last_offset > reach.file.last_offset:
                reach = span
