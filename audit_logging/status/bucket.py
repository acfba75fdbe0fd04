"""The S3 side of status: the newest archive object, each stream's newest digest and the
dead letters of the last day, found without listing the whole bucket.

Archive objects and digests live in ``year=/month=/day=`` folders: the newest folder is
found a level at a time, newest first. Within a folder a stream's keys sort by offset, so
its newest is the last key: one page when the folder is small, else found by probing where
the keys end (``StartAfter`` with ``MaxKeys=1``, a few dozen tiny requests) instead of
listing a busy day's tens of thousands of keys.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from audit_logging.archive.digest_format import digest_dir, digest_key_re
from audit_logging.archive.layout import parse_key
from audit_logging.errors import AuditLoggingError, MissingExtraError, describe_error
from audit_logging.settings import Settings
from audit_logging.status.figures import Archive, DeadLetters, Digest, S3Object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The consumer's dead-letter folder (audit_logging/consumer/dead_letter.py, which status
# does not import: it sits beside the consumer).
DEAD_LETTER_DIR: Final = "dead-letter/"
PAGE: Final = 1000
# Dead-letter files are listed up to this many pages; past it, the counts are a lower bound.
DEAD_LETTER_PAGES: Final = 10
# Folders tried, newest first, before saying a stream has no archive object or digest.
DAY_FOLDERS_TRIED: Final = 7
_YEAR_RE: Final = re.compile(r"year=([0-9]{4})/")
_MONTH_RE: Final = re.compile(r"month=([0-9]{2})/")
_DAY_RE: Final = re.compile(r"day=([0-9]{2})/")
_OFFSET_DIGITS: Final = 20
_OWN_RE: Final = re.compile(r"[0-9]{20}-")
_MAX_OFFSET: Final = 2**64


class _OutOfTimeError(AuditLoggingError):
    """The section passed its deadline."""


def make_client(settings: Settings) -> S3Client:
    """A client that gives up quickly: status answers within its deadline."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MissingExtraError("consumer", "boto3") from None
    secret = settings.aws_secret_access_key
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url_s3,
        region_name=settings.aws_region_name,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get() if secret else None,
        config=Config(connect_timeout=2, read_timeout=4, retries={"total_max_attempts": 1}),
    )
    return client


def read_archive(settings: Settings, streams: Sequence[str], timeout: float,
                 client: S3Client | None = None, page: int = PAGE) -> Archive:
    """What the archive holds, or an :class:`Archive` whose ``error`` says why it could not
    tell (never raises)."""
    bucket = settings.require("s3_bucket")
    figures = Archive(bucket, settings.s3_prefix)
    where = f"s3://{bucket}/{settings.s3_prefix}"
    try:
        lister = _Lister(client or make_client(settings), bucket, time.monotonic() + timeout, page)
        lister.check_bucket()
        figures.reachable = True
        now = time.time()
        latest = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
        figures.newest_object = _newest_object(lister, settings.s3_prefix, streams, latest)
        figures.digests = [_newest_digest(lister, settings.s3_prefix, stream, latest)
                           for stream in streams]
        figures.dead_letters = _dead_letters(lister, settings.s3_prefix, now - 86_400)
    except _OutOfTimeError:
        figures.error = f"{where}: no complete answer within {timeout:g} s"
    except MissingExtraError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised
        figures.error = f"{where}: {describe_error(exc)}"
    return figures


class _Lister:
    def __init__(self, client: S3Client, bucket: str, deadline: float, page: int) -> None:
        self.client = client
        self.bucket = bucket
        self.deadline = deadline
        self.page = page

    def page_of(self, **kwargs: Any) -> Any:
        if time.monotonic() > self.deadline:
            raise _OutOfTimeError
        return self.client.list_objects_v2(Bucket=self.bucket, **kwargs)

    def check_bucket(self) -> None:
        self.page_of(MaxKeys=1)

    def folders(self, prefix: str, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
        """(number, folder) of the ``pattern`` folders right under ``prefix``, newest first."""
        found: list[tuple[int, str]] = []
        token: dict[str, str] = {}
        while True:
            answer = self.page_of(Prefix=prefix, Delimiter="/", MaxKeys=self.page, **token)
            for common in answer.get("CommonPrefixes", []):
                name = common.get("Prefix", "")[len(prefix):]
                match = pattern.fullmatch(name)
                if match:
                    found.append((int(match.group(1)), prefix + name))
            if not answer.get("IsTruncated"):
                return sorted(found, reverse=True)
            token = {"ContinuationToken": answer["NextContinuationToken"]}

    def day_folders(self, base: str, latest: dt.date) -> Iterator[str]:
        """``base``'s ``year=/month=/day=`` folders up to ``latest``, newest first (a folder
        dated later holds records with a wrong clock, not the newest objects)."""
        for year, year_folder in self.folders(base, _YEAR_RE):
            if year > latest.year:
                continue
            for month, month_folder in self.folders(year_folder, _MONTH_RE):
                if (year, month) > (latest.year, latest.month):
                    continue
                for day, day_folder in self.folders(month_folder, _DAY_RE):
                    if (year, month, day) <= (latest.year, latest.month, latest.day):
                        yield day_folder

    def last(self, prefix: str) -> S3Object | None:
        """The object with the last key ``prefix`` + a 20-digit offset + ``-...`` (another
        stream named ``{stream}-...`` shares the prefix: its keys are passed over)."""
        answer = self.page_of(Prefix=prefix, MaxKeys=self.page)
        contents = _own(prefix, answer.get("Contents", []))
        if answer.get("IsTruncated"):
            start = self._last_start(prefix, _offset_of(prefix, contents[-1]["Key"])
                                     if contents else 0)
            contents = _own(prefix, self._from(prefix, start)) or contents
        if not contents:
            return None
        item = contents[-1]
        return S3Object(item["Key"], item["LastModified"].timestamp(), item.get("Size", 0))

    def _exists_from(self, prefix: str, offset: int) -> bool:
        """Whether a key under ``prefix`` starts at ``offset`` or later."""
        answer = self.page_of(Prefix=prefix, StartAfter=f"{prefix}{offset:0{_OFFSET_DIGITS}d}",
                            MaxKeys=1)
        return bool(_own(prefix, answer.get("Contents", [])))

    def _last_start(self, prefix: str, low: int) -> int:
        """The largest offset a key under ``prefix`` starts at, knowing one starts at
        ``low``: gallop, then halve."""
        step = 1
        while low + step < _MAX_OFFSET and self._exists_from(prefix, low + step):
            low += step
            step *= 2
        high = min(low + step, _MAX_OFFSET)
        while high - low > 1:
            middle = (low + high) // 2
            if self._exists_from(prefix, middle):
                low = middle
            else:
                high = middle
        return low

    def _from(self, prefix: str, offset: int) -> list[Any]:
        contents: list[Any] = []
        token: dict[str, str] = {}
        while True:
            answer = self.page_of(Prefix=prefix, StartAfter=f"{prefix}{offset:0{_OFFSET_DIGITS}d}",
                                MaxKeys=self.page, **token)
            contents += answer.get("Contents", [])
            if not answer.get("IsTruncated"):
                return contents
            token = {"ContinuationToken": answer["NextContinuationToken"]}


def _own(prefix: str, contents: list[Any]) -> list[Any]:
    return [item for item in contents if _OWN_RE.match(item["Key"], len(prefix))]


def _offset_of(prefix: str, key: str) -> int:
    return int(key[len(prefix):len(prefix) + _OFFSET_DIGITS])


def _newest_object(lister: _Lister, s3_prefix: str, streams: Sequence[str],
                   latest: dt.date) -> S3Object | None:
    for tried, folder in enumerate(lister.day_folders(s3_prefix, latest)):
        if tried >= DAY_FOLDERS_TRIED:
            return None
        found = [obj for stream in _streams_in(lister, s3_prefix, folder, streams)
                 if (obj := lister.last(f"{folder}{stream}-")) is not None
                 and parse_key(s3_prefix, obj.key) is not None]
        if found:
            return max(found, key=lambda obj: (obj.time, obj.key))
    return None


def _streams_in(lister: _Lister, s3_prefix: str, folder: str,
                streams: Sequence[str]) -> list[str]:
    """The configured streams, and any other a first page of ``folder`` shows (a stream the
    settings no longer name may have the folder's newest objects)."""
    answer = lister.page_of(Prefix=folder, MaxKeys=lister.page)
    seen = {parsed.stream for item in answer.get("Contents", [])
            if (parsed := parse_key(s3_prefix, item["Key"])) is not None}
    return sorted(set(streams) | seen)


def _newest_digest(lister: _Lister, s3_prefix: str, stream: str, latest: dt.date) -> Digest:
    pattern = digest_key_re(s3_prefix, stream)
    for tried, folder in enumerate(lister.day_folders(digest_dir(s3_prefix, stream), latest)):
        if tried >= DAY_FOLDERS_TRIED:
            break
        newest = lister.last(f"{folder}{stream}-")
        match = None if newest is None else pattern.fullmatch(newest.key)
        if newest is not None and match is not None:
            return Digest(stream, newest.key, newest.time, int(match.group(2)))
    return Digest(stream)


def _dead_letters(lister: _Lister, s3_prefix: str, since: float) -> DeadLetters:
    """Dead-letter files written since ``since``. Their keys say nothing of the time, so the
    folder is listed (dead letters are rare), up to a bound."""
    figures = DeadLetters()
    token: dict[str, str] = {}
    for _ in range(DEAD_LETTER_PAGES):
        answer = lister.page_of(Prefix=s3_prefix + DEAD_LETTER_DIR, MaxKeys=lister.page, **token)
        for item in answer.get("Contents", []):
            written = item["LastModified"].timestamp()
            if written < since:
                continue
            figures.objects += 1
            figures.bytes += item.get("Size", 0)
            if figures.newest is None or written > figures.newest.time:
                figures.newest = S3Object(item["Key"], written, item.get("Size", 0))
        if not answer.get("IsTruncated"):
            return figures
        token = {"ContinuationToken": answer["NextContinuationToken"]}
    figures.complete = False
    return figures
