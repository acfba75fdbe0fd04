"""Where the archive keeps things in S3: one Parquet file per batch and record day.

``{AUDIT_LOG_S3_PREFIX}year=YYYY/month=MM/day=DD/{stream}-{first:020d}-{last:020d}.parquet``
where first and last are the stream offsets of the first and last record in the file and
``{stream}`` the partition's stream on a super stream. The ``key=value`` folders are Hive's
partitioning, which engines such as Athena, Trino, Spark and DuckDB read directly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

PARQUET_SUFFIX: Final = ".parquet"
# [0-9], not \d (which takes every script's digits, '٣' too), and \Z, not $ (which takes a
# key ending in a newline): a key is the consumer's only when it is exactly what it writes.
_FILE_RE: Final = re.compile(
    r"year=([0-9]{4})/month=([0-9]{2})/day=([0-9]{2})/(.+)-([0-9]{20})-([0-9]{20})\.parquet\Z"
)


def day_of(record: Mapping[str, Any]) -> str:
    """``YYYY-MM-DD`` of a checked record (its timestamp is normalised to UTC)."""
    return str(record["timestamp"])[:10]


def day_dir(s3_prefix: str, day: str) -> str:
    return f"{s3_prefix}year={day[:4]}/month={day[5:7]}/day={day[8:10]}/"


def archive_key(s3_prefix: str, stream: str, day: str, first: int, last: int) -> str:
    return f"{day_dir(s3_prefix, day)}{stream}-{first:020d}-{last:020d}{PARQUET_SUFFIX}"


def archive_key_re(s3_prefix: str, day: str, stream: str) -> re.Pattern[str]:
    return re.compile(
        "^"
        + re.escape(f"{day_dir(s3_prefix, day)}{stream}-")
        + r"([0-9]{20})-([0-9]{20})\.parquet\Z"
    )


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    """One archive object, as its key names it."""

    key: str
    day: dt.date
    stream: str
    first_offset: int
    last_offset: int
    size: int = 0


def parse_key(s3_prefix: str, key: str, size: int = 0) -> ArchiveFile | None:
    """The archive file ``key`` names, or None for anything else under the prefix (dead
    letters, digests, a stray object)."""
    if not key.startswith(s3_prefix):
        return None
    match = _FILE_RE.fullmatch(key[len(s3_prefix):])
    if match is None:
        return None
    year, month, day, stream, first, last = match.groups()
    try:
        when = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return ArchiveFile(key, when, stream, int(first), int(last), size)


def days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """Every day from ``first`` to ``last``, both included."""
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)
