"""What the capture side counts, in plain Python: exporting it (``audit_logging.metrics``)
needs prometheus-client, keeping it needs nothing, and an app without the extra pays only
for the counting.

Counting costs the app's threads nothing: records are counted by the publisher's thread as
it takes them from the queue, sends them and gets their confirms. Each publisher keeps its
own counts (``StreamPublisher.stats()``); this module knows every publisher of the process,
so a scrape can sum them. A publisher that is garbage-collected leaves its counts here
(counters never go down), and a forked child starts from zero (counts are per process).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import os
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Protocol

# Why a record was refused. A fixed set: a label value never comes from what the app logged.
REJECT_REASONS: Final = ("no_action", "invalid", "unstorable", "encode_error")
# What a publisher counts (the keys of its ``collections.Counter``).
COUNTED: Final = ("accepted", "published", "spooled", "replayed", "lost")
# Upper bounds (seconds) of the confirm latency buckets; the same as the metrics catalogue's
# FAST_BUCKETS (a test holds them equal: the capture side does not import the catalogue).
LATENCY_BOUNDS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ConfirmLatency:
    """A fixed-bucket histogram of confirm latencies: written by the publisher's thread
    only, read by a scrape. A publish frame goes to one stream, which confirms in order: the
    confirm of its last record times all of its records, in one observation. A frame whose
    connection drops first is not timed; its records are, when their resend is confirmed."""

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float, records: int = 1) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += records
        self.sum += seconds * records

    def add(self, other: ConfirmLatency) -> None:
        for index, count in enumerate(list(other.buckets)):
            self.buckets[index] += count
        self.sum += other.sum

    def reset(self) -> None:
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.sum = 0.0


@dataclasses.dataclass
class Gauges:
    """A publisher's state now."""

    queue_records: int = 0
    spool_records: int = 0
    spool_bytes: int = 0
    unconfirmed: int = 0
    connected: bool = False


class Source(Protocol):
    """A publisher, as this module sees it."""

    @property
    def open(self) -> bool: ...

    def gauges(self) -> Gauges: ...


@dataclasses.dataclass
class Snapshot:
    """Every publisher of the process summed. ``connected`` is None when no publisher is
    open (there is no broker link to speak of), else whether all of them are connected."""

    counts: dict[str, int]
    rejected: dict[str, int]
    latency: ConfirmLatency
    gauges: Gauges
    connected: bool | None


@dataclasses.dataclass(eq=False)
class _Entry:
    source: weakref.ref[Source]
    counts: collections.Counter[str]
    latency: ConfirmLatency


_lock = threading.Lock()
_entries: dict[int, _Entry] = {}
_next_token = 0
_retired_counts: collections.Counter[str] = collections.Counter()
_retired_latency = ConfirmLatency()
# Refusals are counted here, not per publisher: the handler refuses a record without an
# action before any publisher sees it.
_rejected: collections.Counter[str] = collections.Counter()


def count_rejected(reason: str) -> None:
    _rejected[reason if reason in REJECT_REASONS else "invalid"] += 1


def track(source: Source, counts: collections.Counter[str], latency: ConfirmLatency) -> None:
    """Count ``source`` in every snapshot from now on; its counts stay counted after it is
    gone. ``counts`` and ``latency`` must stay the same objects for its whole life."""
    global _next_token  # noqa: PLW0603 - one numbering per process
    with _lock:
        _next_token += 1
        token = _next_token
        _entries[token] = _Entry(weakref.ref(source), counts, latency)
    weakref.finalize(source, _retire, token)


def _retire(token: int) -> None:
    with _lock:
        entry = _entries.pop(token, None)
        if entry is not None:
            _retired_counts.update(_read(entry.counts))
            _retired_latency.add(entry.latency)


def _read(counts: collections.Counter[str]) -> dict[str, int]:
    # Key by key (each read is atomic): the publisher's thread may add a key meanwhile.
    return {key: counts[key] for key in COUNTED}


def snapshot() -> Snapshot:
    latency = ConfirmLatency()
    gauges = Gauges()
    connected: bool | None = None
    with _lock:
        # The retired counts under the same lock as the live ones: a publisher collected in
        # between would be in neither, and the counters would go down for this scrape.
        totals = collections.Counter(_read(_retired_counts))
        latency.add(_retired_latency)
        entries = list(_entries.values())
        for entry in entries:
            totals.update(_read(entry.counts))
            latency.add(entry.latency)
    for entry in entries:
        source = entry.source()
        if source is None or not source.open:
            continue
        now = source.gauges()
        gauges.queue_records += now.queue_records
        gauges.spool_records += now.spool_records
        gauges.spool_bytes += now.spool_bytes
        gauges.unconfirmed += now.unconfirmed
        connected = now.connected and connected is not False
    gauges.connected = bool(connected)
    rejected = {reason: _rejected[reason] for reason in REJECT_REASONS}
    return Snapshot(dict(totals), rejected, latency, gauges, connected)


def spool_bytes(folders: Iterable[Path]) -> int:
    """Bytes of records the spool folders hold on disk (segments and overflow file), read
    now; a folder or file removed meanwhile (or unreadable) counts as empty: a scrape must
    not fail over it."""
    total = 0
    for folder in folders:
        try:
            with os.scandir(folder) as items:
                files = [item for item in items if item.name.endswith(".log")]
        except OSError:
            continue
        for item in files:
            with contextlib.suppress(OSError):
                total += item.stat().st_size
    return total


def _forget_in_child() -> None:
    global _lock  # noqa: PLW0603 - another thread may have held it at the fork
    _lock = threading.Lock()
    _retired_counts.clear()
    _retired_latency.reset()
    _rejected.clear()


os.register_at_fork(after_in_child=_forget_in_child)
