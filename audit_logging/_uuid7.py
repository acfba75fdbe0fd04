"""Time-ordered UUIDv7 (RFC 9562), monotonic within a process.

Python 3.11 has no ``uuid.uuid7``; this keeps producer installs free of another dependency.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable

_lock = threading.Lock()
_last_ms = 0
_last_counter = 0


def uuid7_str() -> str:
    """A UUIDv7 in its canonical string form (made without a UUID object: faster)."""
    return _canonical(_uuid7_int())


def uuid7_at(moment: dt.datetime, random_bits: Callable[[int], int] | None = None) -> str:
    """A UUIDv7 as if made at ``moment`` (aware), for records made after the fact (tests,
    benchmarks): its 48-bit millisecond prefix says when, the other 74 bits come from
    ``random_bits(n)`` (default: the operating system's randomness; a seeded
    ``random.Random().getrandbits`` makes the same ids on every run). Not monotonic."""
    bits = random_bits if random_bits is not None else _os_random_bits
    millis = int(moment.timestamp() * 1000)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | bits(12) << 64
    value |= 0b10 << 62 | bits(62)
    return _canonical(value)


def _os_random_bits(count: int) -> int:
    return int.from_bytes(os.urandom((count + 7) // 8), "big") & ((1 << count) - 1)


def _canonical(value: int) -> str:
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _uuid7_int() -> int:
    # A UUIDv7 whose 48-bit millisecond prefix and 12-bit counter keep it sortable by
    # creation order within a process, also when the clock stalls or steps back.
    global _last_ms, _last_counter  # noqa: PLW0603 - one generator state per process
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _last_counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _last_counter += 1
            if _last_counter > 0xFFF:
                # Counter exhausted within one millisecond: borrow the next one.
                _last_ms += 1
                _last_counter = 0
        ms, counter = _last_ms, _last_counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    return value | rand_b
