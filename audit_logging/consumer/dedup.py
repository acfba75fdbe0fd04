"""A bounded memory of recent log_ids, so a record resent to the stream is archived once.

A million ids held as Python strings in a dict would take ~150 MB; here each costs 16 bytes
in sorted ``array`` generations, so the consumer's memory stays flat. The newest ids sit in
a small set; when it fills it is frozen into a sorted generation, and the oldest generation
is dropped once the window is exceeded.
"""

from __future__ import annotations

import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from typing import Final

_LOW: Final = (1 << 64) - 1


def _key(log_id: str) -> int:
    return uuid.UUID(log_id).int


class _Generation:
    """Sorted 128-bit ids as two parallel arrays of their high and low 64 bits."""

    __slots__ = ("high", "low")

    def __init__(self, keys: set[int]) -> None:
        ordered = sorted(keys)
        self.high = array("Q", (k >> 64 for k in ordered))
        self.low = array("Q", (k & _LOW for k in ordered))

    def __len__(self) -> int:
        return len(self.high)

    def __contains__(self, key: int) -> bool:
        high, low = key >> 64, key & _LOW
        start = bisect_left(self.high, high)
        end = bisect_right(self.high, high, start)
        if start == end:
            return False
        # Within equal high halves the low halves are sorted too.
        at = bisect_left(self.low, low, start, end)
        return at < end and self.low[at] == low


class RecentIds:
    """Remembers at least the last ``window`` log_ids added (at most one generation more)."""

    def __init__(self, window: int, generation: int = 65_536) -> None:
        self._window = max(1, window)
        self._generation = max(1, min(generation, self._window))
        self._fresh: set[int] = set()
        self._frozen: deque[_Generation] = deque()
        self._frozen_count = 0

    def __len__(self) -> int:
        return len(self._fresh) + self._frozen_count

    def __contains__(self, log_id: str) -> bool:
        key = _key(log_id)
        return key in self._fresh or any(key in gen for gen in reversed(self._frozen))

    def add(self, log_id: str) -> bool:
        """Remember ``log_id``; False if it was already remembered (a duplicate)."""
        key = _key(log_id)
        if key in self._fresh or any(key in gen for gen in reversed(self._frozen)):
            return False
        self._fresh.add(key)
        if len(self._fresh) >= self._generation:
            gen = _Generation(self._fresh)
            self._frozen.append(gen)
            self._frozen_count += len(gen)
            self._fresh = set()
            while self._frozen and self._frozen_count - len(self._frozen[0]) >= self._window:
                self._frozen_count -= len(self._frozen.popleft())
        return True
