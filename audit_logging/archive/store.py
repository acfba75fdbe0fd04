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
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit_logging.archive.file_cache import FileCache
from audit_logging.archive.layout import ArchiveFile, parse_key
from audit_logging.archive.parquet import ARROW_SCHEMA
from audit_logging.errors import AuditLoggingError, ConfigurationError, describe_error, shown

if TYPE_CHECKING:
    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.archive")
FOOTERS_KEPT: Final = 4096  # files whose footer stays in memory (a few KiB each)
FOOTER_READERS: Final = 8
_FORMAT: Final = ds.ParquetFileFormat()
FILES_READ_AT_ONCE: Final = 16
# Ranges shorter than this are listed a day folder at a time, longer ones a month at a time.
DAYS_LISTED_ONE_BY_ONE: Final = 4
# Whole archive files kept in memory (a month of a million records is about 40 MiB).
FILE_BYTES_KEPT: Final = 128 * 1024 * 1024
_Read = TypeVar("_Read")


def s3_filesystem(
    settings: Settings,
    *,
    connect_timeout: float = 5,
    request_timeout: float = 60,
    attempts: int = 3,
) -> pafs.S3FileSystem:
    """The archive's S3, as pyarrow reads it; ``attempts`` bounds the tries of one request
    (3 is pyarrow's own default)."""
    secret = settings.aws_secret_access_key
    return pafs.S3FileSystem(
        access_key=settings.aws_access_key_id,
        secret_key=secret.get() if secret else None,
        region=settings.aws_region_name or "us-east-1",
        endpoint_override=settings.aws_endpoint_url_s3,
        connect_timeout=connect_timeout,
        request_timeout=request_timeout,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
    )


def _month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    months = []
    month = first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


class SearchTooLongError(AuditLoggingError):
    """A search of the archive that passed its deadline; what it read is dropped."""

    def __init__(self, files: int) -> None:
        super().__init__(f"the archive search passed its deadline over {files} files: "
                         "narrow the time range or add filters")


def _time_left(deadline: float | None, files: int) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise SearchTooLongError(files)
    return left


class UnreadableFileError(AuditLoggingError):
    """A file under the archive's prefix that is no archive file this package can read."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"archive file {shown(key, 300)} cannot be read: {reason}")
        self.key = key
        self.reason = reason


class ArchiveStore:
    """One archive: a bucket and the key prefix its files are under."""

    def __init__(
        self,
        settings: Settings,
        filesystem: pafs.FileSystem | None = None,
        *,
        cache_bytes: int = FILE_BYTES_KEPT,
    ) -> None:
        if settings.s3_bucket is None:
            raise ConfigurationError("AUDIT_LOG_AWS_S3_BUCKET", "is not set: where is the archive?")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.fs = filesystem if filesystem is not None else s3_filesystem(settings)
        self._footers: collections.OrderedDict[tuple[str, int], ds.Fragment] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self._cache = FileCache(cache_bytes)
        # Shared by every scan of this store: the files read at once stay bounded however
        # many searches run side by side.
        self._readers = concurrent.futures.ThreadPoolExecutor(
            FILES_READ_AT_ONCE, thread_name_prefix="archive-read"
        )

    def path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def files(self, first: dt.date, last: dt.date) -> list[ArchiveFile]:
        """The archive files of the days from ``first`` to ``last`` (both included), by day
        and offset. One listing per month (per day for a few days, as a detail reads),
        never one for the whole archive."""
        if (last - first).days < DAYS_LISTED_ONE_BY_ONE:
            count = (last - first).days + 1
            days = [first + dt.timedelta(days=i) for i in range(count)]
            folders = [f"{self.prefix}year={d:%Y}/month={d:%m}/day={d:%d}" for d in days]
        else:
            folders = [f"{self.prefix}year={m:%Y}/month={m:%m}" for m in _month_starts(first, last)]
        found: list[ArchiveFile] = []
        for folder in folders:
            selector = pafs.FileSelector(f"{self.bucket}/{folder}", recursive=True,
                                         allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.type != pafs.FileType.File:
                    continue
                file = parse_key(self.prefix, info.path[len(self.bucket) + 1 :], info.size or 0)
                if file is not None and first <= file.day <= last:
                    found.append(file)
        return sorted(found, key=lambda f: (f.day, f.stream, f.first_offset))

    def first_month(self) -> dt.date | None:
        """The first day of the earliest month the archive has a folder for (None for an
        empty archive): two short listings, however many files the archive holds."""
        for year in self._folders(f"{self.bucket}/{self.prefix}", "year="):
            months = self._folders(f"{self.bucket}/{self.prefix}year={year}/", "month=")
            if months:
                return dt.date(int(year), int(months[0]), 1)
        return None

    def _folders(self, under: str, name: str) -> list[str]:
        selector = pafs.FileSelector(under, recursive=False, allow_not_found=True)
        values = []
        for info in self.fs.get_file_info(selector):
            base = info.base_name
            if info.type == pafs.FileType.Directory and base.startswith(name):
                value = base[len(name):]
                # A stray folder (month=13) is not the archive's: passed over, not fatal.
                # ASCII only: str.isdigit also takes '²' (which int() refuses) and '٣'.
                if (value.isascii() and value.isdigit()
                        and (name != "month=" or 1 <= int(value) <= 12)):
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

    def scan(
        self,
        files: Sequence[ArchiveFile],
        columns: Sequence[str],
        where: ds.Expression | None = None,
        skipped: list[UnreadableFileError] | None = None,
        deadline: float | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``files`` that ``where`` keeps, ``columns`` only, a batch at a time.

        Each file is read whole, in two requests whatever the columns and row groups needed
        (its size, then its bytes: a request costs far more than the bytes of one of these
        small files, and pyarrow's Python API cannot be given the listed size), or taken from
        the cache of files kept; only its row groups whose statistics do not rule ``where``
        out are decoded.
        :data:`FILES_READ_AT_ONCE` files are read and decoded side by side.

        A file that S3 gives but that is no archive file (damaged, cut short, another
        schema) is added to ``skipped`` and passed over, or, without ``skipped``, raises
        :class:`UnreadableFileError`. S3 failing raises as it comes. Past ``deadline`` (a
        ``time.monotonic()`` value), even while a read is waiting on S3, the scan stops with
        :class:`SearchTooLongError`."""
        wanted = list(columns)
        if where is not None:
            # A filter that does not fit the archive's columns is this package's fault:
            # found here, once, it cannot pass for every file being damaged.
            ARROW_SCHEMA.empty_table().filter(where)
        for _file, table in self._side_by_side(
            files, lambda file: self._rows_of(file, wanted, where), skipped, deadline
        ):
            yield from table.to_batches()

    def read_fresh(
        self,
        files: Sequence[ArchiveFile],
        columns: Sequence[str],
        where: ds.Expression,
        skipped: list[UnreadableFileError],
        deadline: float | None = None,
    ) -> Iterator[tuple[ArchiveFile, pa.Buffer, pa.Table]]:
        """Each of ``files`` as S3 holds it now (never from the cache of files kept, nor
        kept in it), with the rows ``where`` keeps: what is then said of the bytes (their
        SHA-256) is said of the very bytes that held the rows. Side by side and bounded as
        :meth:`scan` reads, unreadable files added to ``skipped``, the same ``deadline``."""
        wanted = list(columns)
        ARROW_SCHEMA.empty_table().filter(where)

        def read(file: ArchiveFile) -> tuple[pa.Buffer, pa.Table]:
            data = self._bytes_from_s3(file)
            return data, self._decoded(file, data, wanted, where)

        for file, (data, table) in self._side_by_side(files, read, skipped, deadline):
            yield file, data, table

    def _side_by_side(
        self,
        files: Sequence[ArchiveFile],
        read: Callable[[ArchiveFile], _Read],
        skipped: list[UnreadableFileError] | None,
        deadline: float | None,
    ) -> Iterator[tuple[ArchiveFile, _Read]]:
        """``read`` of each file, in the files' order, :data:`FILES_READ_AT_ONCE` at a time on
        the store's shared readers (see :meth:`scan` for ``skipped`` and ``deadline``)."""
        queue = iter(files)
        pending = collections.deque(
            (file, self._readers.submit(read, file))
            for file in itertools.islice(queue, FILES_READ_AT_ONCE)
        )
        try:
            while pending:
                file, future = pending.popleft()
                following = next(queue, None)
                if following is not None:
                    pending.append((following, self._readers.submit(read, following)))
                try:
                    result = future.result(timeout=_time_left(deadline, len(files)))
                except concurrent.futures.TimeoutError:
                    raise SearchTooLongError(len(files)) from None
                except UnreadableFileError as unreadable:
                    if skipped is None:
                        raise
                    _log.warning("%s", unreadable)
                    skipped.append(unreadable)
                    continue
                yield file, result
        finally:
            for _, left in pending:  # a read stopped early (an error, a closed generator)
                left.cancel()

    def _rows_of(
        self, file: ArchiveFile, columns: list[str], where: ds.Expression | None
    ) -> pa.Table:
        return self._decoded(file, self._bytes_of(file), columns, where)

    def _decoded(
        self, file: ArchiveFile, data: pa.Buffer, columns: list[str], where: ds.Expression | None
    ) -> pa.Table:
        # What goes wrong from here is the bytes' fault (they are all in memory), but for
        # running out of memory (the filter was checked before the scan).
        try:
            return _decode(data, columns, where)
        except (MemoryError, pa.ArrowMemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - any fault of a damaged file
            raise UnreadableFileError(file.key, describe_error(exc, limit=200)) from None

    def _bytes_of(self, file: ArchiveFile) -> pa.Buffer:
        kept = self._cache.get(file.key, file.size)
        if kept is not None:
            return kept
        data = self._bytes_from_s3(file)
        self._cache.put(file.key, file.size, data)
        return data

    def _bytes_from_s3(self, file: ArchiveFile) -> pa.Buffer:
        with self.fs.open_input_file(self.path(file.key)) as stream:
            data = stream.read_buffer()
        if file.size and data.size != file.size:  # S3's fault, not the file's: not kept
            raise OSError(f"S3 gave {data.size} bytes of {file.key}, listed as {file.size}")
        return data

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

    def bytes_kept(self) -> int:
        """The bytes of whole files the cache holds."""
        return self._cache.bytes_kept()

    def footers_kept(self) -> int:
        with self._lock:
            return len(self._footers)


def _decode(data: pa.Buffer, columns: list[str], where: ds.Expression | None) -> pa.Table:
    # pyarrow reads a fragment from any file object; its stubs know only paths.
    fragment = _FORMAT.make_fragment(pa.BufferReader(data))  # type: ignore[arg-type]
    assert isinstance(fragment, ds.ParquetFileFragment)
    if where is not None:
        kept = fragment.subset(where, schema=ARROW_SCHEMA)
        assert isinstance(kept, ds.ParquetFileFragment)
        if not kept.num_row_groups:
            return ARROW_SCHEMA.empty_table().select(columns)
        fragment = kept
    # Files are decoded side by side already: threads within one would only compete.
    return fragment.to_table(schema=ARROW_SCHEMA, columns=columns, filter=where,
                             use_threads=False)


def _read_footer(path: str, fs: pafs.FileSystem, size: int | None) -> ds.ParquetFileFragment:
    """The file at ``path`` as a fragment, its footer read (a request to S3). A function of
    its own so that tests can count the reads."""
    made = _FORMAT.make_fragment(path, fs, file_size=size)
    assert isinstance(made, ds.ParquetFileFragment)
    made.ensure_complete_metadata()
    return made


def _last_of_month(year: int, month: int) -> dt.date:
    return (dt.date(year, month, 1) + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
