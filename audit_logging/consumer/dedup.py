"""A bounded memory of recent log_ids, so a record resent to the stream is archived once,
and a log_id reused for another record is told apart from a resend.

A million ids held as Python strings in a dict would take ~150 MB; here each costs 24 bytes
(the 128-bit id and a 64-bit digest of the record's content) in sorted ``array``
generations, so the consumer's memory stays flat. The newest ids sit in a small dict; when
it fills it is frozen into a sorted generation, and the oldest generation is dropped once
the window is exceeded.
"""

from __future__ import annotations

import hashlib
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, Literal

from audit_logging.record import record_to_json

_LOW: Final = (1 << 64) - 1

Seen = Literal["new", "same", "other"]


def content_digest(record: Mapping[str, Any]) -> int:
    """64 bits that differ, but for a 2**-64 chance, when two records' content differs."""
    digest = hashlib.blake2b(record_to_json(record), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _key(log_id: str) -> int:
    # Only the canonical 36-character form: uuid.UUID alone also takes braces, "urn:uuid:"
    # and stray whitespace, which would make two spellings of one id look like one record.
    if len(log_id) != 36:
        raise ValueError(f"log_id {log_id[:80]!r} is not a 36-character UUID")
    return uuid.UUID(log_id).int


class _Generation:
    """Sorted 128-bit ids as two parallel arrays of their high and low 64 bits, and the
    digest of each id's record."""

    __slots__ = ("digests", "high", "low")

    def __init__(self, entries: dict[int, int]) -> None:
        ordered = sorted(entries)
        self.high = array("Q", (k >> 64 for k in ordered))
        self.low = array("Q", (k & _LOW for k in ordered))
        self.digests = array("Q", (entries[k] for k in ordered))

    def __len__(self) -> int:
        return len(self.high)

    def find(self, key: int) -> int | None:
        """The digest stored for ``key``, None if absent."""
        high, low = key >> 64, key & _LOW
        start = bisect_left(self.high, high)
        end = bisect_right(self.high, high, start)
        if start == end:
            return None
        # Within equal high halves the low halves are sorted too.
        at = bisect_left(self.low, low, start, end)
        if at < end and self.low[at] == low:
            return self.digests[at]
        return None


class RecentIds:
    """Remembers at least the last ``window`` log_ids added (at most one generation more)."""

    def __init__(self, window: int, generation: int = 65_536) -> None:
        self._window = max(1, window)
        self._generation = max(1, min(generation, self._window))
        self._fresh: dict[int, int] = {}
        self._frozen: deque[_Generation] = deque()
        self._frozen_count = 0

    def __len__(self) -> int:
        return len(self._fresh) + self._frozen_count

    def _find(self, key: int) -> int | None:
        digest = self._fresh.get(key)
        if digest is not None:
            return digest
        for gen in reversed(self._frozen):
            digest = gen.find(key)
            if digest is not None:
                return digest
        return None

    def __contains__(self, log_id: str) -> bool:
        return self._find(_key(log_id)) is not None

    def remember(self, log_id: str, digest: int) -> Seen:
        """``new`` (now remembered), ``same`` (a resend of the remembered record) or ``other``
        (the id was remembered with other content; the first stays remembered).

        Raises ValueError when ``log_id`` is not a canonical UUID."""
        key = _key(log_id)
        known = self._find(key)
        if known is not None:
            return "same" if known == digest else "other"
        self._fresh[key] = digest
        if len(self._fresh) >= self._generation:
            gen = _Generation(self._fresh)
            self._frozen.append(gen)
            self._frozen_count += len(gen)
            self._fresh = {}
            while self._frozen and self._frozen_count - len(self._frozen[0]) >= self._window:
                self._frozen_count -= len(self._frozen.popleft())
        return "new"

    def add(self, log_id: str, digest: int = 0) -> bool:
        """Remember ``log_id``; False if it was already remembered (whatever its content)."""
        return self.remember(log_id, digest) == "new"
