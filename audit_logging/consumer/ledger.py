"""What S3 already holds past the stored offset, so a replay never archives a record twice.

The stream offset is stored only after a batch is in S3 and OpenSearch, so after a crash
between the upload and the offset store the consumer reads that batch again. Resuming after
the highest archived offset would not be safe: a batch is split into one file per record
day, and a crash between two of those uploads leaves records below that offset unarchived.
Instead the consumer resumes at the stored offset and, for each record it reads again, asks
this ledger whether a file already holds it: a file for the record's day whose offset range
contains the record's offset and whose ``log_id`` column contains its log_id. Dead letters
are matched the same way, by offset, stage and body hash.

Only files whose range ends after the stored offset are considered, listed per record day
when a day is first met (one LIST request in the usual case, where there are none); a file
is read only if a record falls in its range.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from audit_logging.archive import layout, parquet
from audit_logging.consumer import dead_letter
from audit_logging.consumer.s3 import S3Store, is_missing

_log = logging.getLogger("audit_logging.consumer")
# No file spans more offsets than the largest batch (AUDIT_LOG_BATCH_SIZE is at most 100,000,
# plus the few offsets the broker's offset-tracking entries take between messages).
MAX_FILE_SPAN: Final = 200_000


@dataclasses.dataclass(frozen=True, order=True)
class _File:
    first: int
    last: int
    key: str


class _Listing:
    """The files of one S3 folder for our stream, sorted by first offset."""

    def __init__(self, files: Iterable[_File]) -> None:
        self.files = sorted(files)
        self.firsts = [f.first for f in self.files]

    def covering(self, offset: int) -> list[_File]:
        end = bisect.bisect_right(self.firsts, offset)
        start = bisect.bisect_left(self.firsts, offset - MAX_FILE_SPAN)
        return [f for f in self.files[start:end] if f.first <= offset <= f.last]


class ArchiveLedger:
    def __init__(
        self,
        store: S3Store,
        s3_prefix: str,
        stream: str,
        stored_offset: int | None,
        *,
        relist_for: float = 0.0,
    ) -> None:
        """``relist_for``: for this many seconds, list again before each check (a predecessor
        cut off from the broker may still finish an upload it had begun)."""
        self._store = store
        self._prefix = s3_prefix
        self._stream = stream
        self._after = stored_offset
        self._days: dict[str, _Listing] = {}
        self._dead: _Listing | None = None
        self._contents: dict[str, Any] = {}
        self._relist_until = time.monotonic() + relist_for

    def _list(self, folder: str, pattern: Any) -> _Listing:
        start_after = None
        if self._after is not None:
            start_after = f"{folder}{self._stream}-{max(0, self._after - MAX_FILE_SPAN):020d}"
        files = []
        for key in self._store.list_keys(folder + f"{self._stream}-", start_after):
            match = pattern.match(key)
            if match:
                first, last = int(match.group(1)), int(match.group(2))
                if self._after is None or last > self._after:
                    files.append(_File(first, last, key))
        if files:
            _log.info(
                "%d file(s) in %s were written past the stored offset; records they hold "
                "are not archived again",
                len(files),
                folder,
            )
        return _Listing(files)

    def _day(self, day: str) -> _Listing:
        listing = self._days.get(day)
        if listing is None or time.monotonic() < self._relist_until:
            folder = layout.day_dir(self._prefix, day)
            pattern = layout.archive_key_re(self._prefix, day, self._stream)
            listing = self._days[day] = self._list(folder, pattern)
        return listing

    def _read(self, key: str, parse: Any) -> Any:
        if key not in self._contents:
            try:
                self._contents[key] = parse(self._store.get(key))
            except Exception as exc:
                if not is_missing(exc):
                    raise
                self._contents[key] = parse(None)
        return self._contents[key]

    def archived(self, day: str, items: Sequence[tuple[int, str]]) -> dict[int, str]:
        """Offsets among ``items`` ((offset, log_id) of records of ``day``) already archived,
        each with the key of the file that holds it."""
        listing = self._day(day)
        if not listing.files:
            return {}
        found: dict[int, str] = {}
        for offset, log_id in items:
            for file in listing.covering(offset):
                ids = self._read(
                    file.key, lambda data: parquet.read_log_ids(data) if data else set()
                )
                if log_id in ids:
                    found[offset] = file.key
                    break
        return found

    def dead_lettered(
        self, letters: Sequence[dead_letter.DeadLetter]
    ) -> dict[tuple[int, str], str]:
        """(offset, stage) of ``letters`` already in a dead-letter file, with its key."""
        if self._dead is None or time.monotonic() < self._relist_until:
            folder = dead_letter.dead_letter_dir(self._prefix)
            self._dead = self._list(
                folder, dead_letter.dead_letter_key_re(self._prefix, self._stream)
            )
        found: dict[tuple[int, str], str] = {}
        for letter in letters:
            for file in self._dead.covering(letter.offset):
                entries = self._read(
                    file.key,
                    lambda data: set(dead_letter.identities(data)) if data else set(),
                )
                if (letter.offset, letter.stage, letter.sha256) in entries:
                    found[(letter.offset, letter.stage)] = file.key
                    break
        return found

    def forget_before(self, offset: int) -> None:
        """Drop what was read from files that end before ``offset``: offsets only grow."""
        listings = [*self._days.values(), *([self._dead] if self._dead else [])]
        ended = {f.key for listing in listings for f in listing.files if f.last < offset}
        for key in ended & self._contents.keys():
            del self._contents[key]
