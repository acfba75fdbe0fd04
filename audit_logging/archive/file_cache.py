"""Archive files kept in memory, whole, up to a number of bytes.

Archive files are written once and never change, so a key and its size are enough to know a
kept copy is still right. Keeping them pays because a request to S3 costs far more than the
bytes it brings and an investigation reads the same days again and again: the next page, a
narrower filter, the record behind a result.
"""

from __future__ import annotations

import collections
import threading
from typing import Final

import pyarrow as pa

# At most this share of the cache for one file: a large file must not push out all others.
_LARGEST_SHARE: Final = 8


class FileCache:
    """The most recently used files' bytes, at most ``limit`` bytes in all (0 keeps none)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more bytes, got {limit}")
        self.limit = limit
        self._files: collections.OrderedDict[tuple[str, int], pa.Buffer] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, size: int) -> pa.Buffer | None:
        with self._lock:
            found = self._files.get((key, size))
            if found is not None:
                self._files.move_to_end((key, size))
            return found

    def put(self, key: str, size: int, data: pa.Buffer) -> None:
        if data.size > self.limit // _LARGEST_SHARE:
            return
        with self._lock:
            if (key, size) in self._files:
                return
            self._files[(key, size)] = data
            self._bytes += data.size
            while self._bytes > self.limit:
                _, dropped = self._files.popitem(last=False)
                self._bytes -= dropped.size

    def bytes_kept(self) -> int:
        with self._lock:
            return self._bytes
