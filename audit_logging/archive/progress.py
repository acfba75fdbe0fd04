"""Progress of a long archive command on a terminal: records, records/s, days done, ETA (or
objects and bytes, for verify --integrity).

Shown only when the stream is a terminal (a cron job's log gets the summary alone), and
redrawn at most a few times a second so drawing costs nothing next to the work.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Final, TextIO

REDRAW_EVERY: Final = 0.25  # seconds


class _Line:
    """One line redrawn in place; subclasses say what it holds."""

    def __init__(self, verb: str, stream: TextIO | None, enabled: bool | None) -> None:
        self.verb = verb
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._started = time.monotonic()
        self._drawn = 0.0

    def line(self, now: float | None = None) -> str:
        raise NotImplementedError

    def _redraw(self) -> None:
        now = time.monotonic()
        if self.enabled and now - self._drawn >= REDRAW_EVERY:
            self._drawn = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def _elapsed(self, now: float | None) -> float:
        return max((now if now is not None else time.monotonic()) - self._started, 1e-9)

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self._started


class Progress(_Line):
    def __init__(self, verb: str, days: int, stream: TextIO | None = None,
                 *, enabled: bool | None = None) -> None:
        super().__init__(verb, stream, enabled)
        self.days = days
        self.records = 0
        self.days_done = 0

    def add(self, records: int = 0, days: int = 0) -> None:
        self.records += records
        self.days_done += days
        self._redraw()

    def line(self, now: float | None = None) -> str:
        elapsed = self._elapsed(now)
        rate = self.records / elapsed
        text = (f"{self.verb}: {self.records:,} records, {rate:,.0f} records/s, "
                f"day {self.days_done}/{self.days}")
        if 0 < self.days_done < self.days:
            left = elapsed / self.days_done * (self.days - self.days_done)
            text += f", about {_duration(left)} left"
        return text


class TransferProgress(_Line):
    """Progress of reading a known number of objects and bytes (``verify --integrity``):
    objects and MB done of the total, MB/s, time left. Thread-safe: readers report on their
    own threads."""

    def __init__(self, verb: str, objects: int, total_bytes: int, stream: TextIO | None = None,
                 *, enabled: bool | None = None) -> None:
        super().__init__(verb, stream, enabled)
        self.objects = objects
        self.total_bytes = total_bytes
        self.objects_done = 0
        self.bytes_done = 0
        self._lock = threading.Lock()

    def add(self, objects: int = 0, size: int = 0) -> None:
        with self._lock:
            self.objects_done += objects
            self.bytes_done += size
            self._redraw()

    def line(self, now: float | None = None) -> str:
        rate = self.bytes_done / self._elapsed(now)
        text = (f"{self.verb}: {self.objects_done:,}/{self.objects:,} objects, "
                f"{self.bytes_done / 1e6:,.1f}/{self.total_bytes / 1e6:,.1f} MB, "
                f"{rate / 1e6:,.1f} MB/s")
        if rate > 0 and 0 < self.bytes_done < self.total_bytes:
            text += f", about {_duration((self.total_bytes - self.bytes_done) / rate)} left"
        return text


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
