"""The archive in S3 as files to read: which files a range of days holds, and a dataset of
them for pyarrow to scan.

Reads go through pyarrow's own S3 filesystem, which fetches only the byte ranges a scan needs
(the footer, then the columns and row groups the filter keeps). A file's footer is read once
and kept in a bounded cache: archive files are written once and never change, so a key and
its size are enough to know a cached footer is still right.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit_logging.archive.layout import ArchiveFile, parse_key
from audit_logging.archive.parquet import ARROW_SCHEMA
from audit_logging.errors import ConfigurationError

if TYPE_CHECKING:
    from audit_logging.settings import Settings

FOOTERS_KEPT: Final = 4096  # files whose footer stays in memory (a few KiB each)
FOOTER_READERS: Final = 8
_FORMAT: Final = ds.ParquetFileFormat()


def s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    secret = settings.aws_secret_access_key
    return pafs.S3FileSystem(
        access_key=settings.aws_access_key_id,
        secret_key=secret.get() if secret else None,
        region=settings.aws_region_name or "us-east-1",
        endpoint_override=settings.aws_endpoint_url_s3,
        connect_timeout=5,
        request_timeout=60,
    )


def _month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    months = []
    month = first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


class ArchiveStore:
    """One archive: a bucket and the key prefix its files are under."""

    def __init__(self, settings: Settings, filesystem: pafs.FileSystem | None = None) -> None:
        if settings.s3_bucket is None:
            raise ConfigurationError("AUDIT_LOG_AWS_S3_BUCKET", "is not set: where is the archive?")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.fs = filesystem if filesystem is not None else s3_filesystem(settings)
        self._footers: collections.OrderedDict[tuple[str, int], ds.Fragment] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def files(self, first: dt.date, last: dt.date) -> list[ArchiveFile]:
        """The archive files of the days from ``first`` to ``last`` (both included), by day
        and offset. One listing per month, never one for the whole archive."""
        found: list[ArchiveFile] = []
        for month in _month_starts(first, last):
            folder = f"{self.bucket}/{self.prefix}year={month:%Y}/month={month:%m}"
            selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.type != pafs.FileType.File:
                    continue
                file = parse_key(self.prefix, info.path[len(self.bucket) + 1 :], info.size or 0)
                if file is not None and first <= file.day <= last:
                    found.append(file)
        return sorted(found, key=lambda f: (f.day, f.stream, f.first_offset))

    def first_day(self) -> dt.date | None:
        """The earliest day the archive holds a folder for (None for an empty archive)."""
        years = self._folders(f"{self.bucket}/{self.prefix}", "year=")
        for year in years:
            months = self._folders(f"{self.bucket}/{self.prefix}year={year}/", "month=")
            for month in months:
                files = self.files(dt.date(int(year), int(month), 1),
                                   _last_of_month(int(year), int(month)))
                if files:
                    return files[0].day
        return None

    def _folders(self, under: str, name: str) -> list[str]:
        selector = pafs.FileSelector(under, recursive=False, allow_not_found=True)
        values = []
        for info in self.fs.get_file_info(selector):
            base = info.base_name
            if info.type == pafs.FileType.Directory and base.startswith(name):
                value = base[len(name):]
                # A stray folder (month=13) is not the archive's: passed over, not fatal.
                if value.isdigit() and (name != "month=" or 1 <= int(value) <= 12):
                    values.append(value)
        return sorted(values)

    def dataset(self, files: Sequence[ArchiveFile]) -> ds.FileSystemDataset:
        """A dataset of ``files`` for pyarrow to scan (footers from the cache when kept; the
        others fetched side by side: each is a round trip to S3)."""
        if len(files) > 1:
            with concurrent.futures.ThreadPoolExecutor(FOOTER_READERS) as pool:
                fragments = list(pool.map(self._fragment, files))
        else:
            fragments = [self._fragment(file) for file in files]
        return ds.FileSystemDataset(fragments, ARROW_SCHEMA, _FORMAT, self.fs)

    def _fragment(self, file: ArchiveFile) -> ds.Fragment:
        cache_key = (file.key, file.size)
        with self._lock:
            cached = self._footers.get(cache_key)
            if cached is not None:
                self._footers.move_to_end(cache_key)
                return cached
        # The listing's size spares a request per file; the footer is read once, for the
        # row groups' statistics.
        fragment: ds.Fragment = _read_footer(self.path(file.key), self.fs, file.size or None)
        with self._lock:
            self._footers[cache_key] = fragment
            while len(self._footers) > FOOTERS_KEPT:
                self._footers.popitem(last=False)
        return fragment

    def footer(self, file: ArchiveFile) -> pq.FileMetaData:
        """The file's footer (row count, key-value metadata), from the cache when kept."""
        fragment = self._fragment(file)
        assert isinstance(fragment, ds.ParquetFileFragment)
        return fragment.metadata

    def footers_kept(self) -> int:
        with self._lock:
            return len(self._footers)


def _read_footer(path: str, fs: pafs.FileSystem, size: int | None) -> ds.ParquetFileFragment:
    """The file at ``path`` as a fragment, its footer read (a request to S3). A function of
    its own so that tests can count the reads."""
    made = _FORMAT.make_fragment(path, fs, file_size=size)
    assert isinstance(made, ds.ParquetFileFragment)
    made.ensure_complete_metadata()
    return made


def _last_of_month(year: int, month: int) -> dt.date:
    return (dt.date(year, month, 1) + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
