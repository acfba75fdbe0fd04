"""What status found, as plain figures, and the rules that call it healthy or not.

Each part is gathered on its own (a service that fails leaves its ``error`` set and the rest
still reported); :func:`problems` then judges the whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Final

# The consumer archives a batch at the latest one flush interval after its first record;
# a record waiting two intervals plus this is not being consumed.
STALE_GRACE: Final = 30.0
# The parts status can read (``--only``), in the order it shows them; the consumers' /readyz
# URLs are not among them: they are read whenever they are given.
PARTS: Final = ("broker", "archive", "index", "spool")


@dataclasses.dataclass
class StreamEnd:
    stream: str
    exists: bool = True
    end_offset: int | None = None  # the newest record's offset (None: no record)
    end_time: float | None = None  # when the broker wrote it (Unix seconds)


@dataclasses.dataclass
class Backlog:
    """One consumer name on one stream."""

    stream: str
    stored_offset: int | None = None
    # end_offset - stored_offset: offsets, the group's offset-tracking entries included, so
    # an upper bound in records; 0 when caught up.
    lag: int | None = None
    oldest_waiting_offset: int | None = None
    oldest_waiting_time: float | None = None  # broker time of the first unprocessed record


@dataclasses.dataclass
class ConsumerName:
    name: str
    streams: list[Backlog] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Broker:
    reachable: bool = False
    error: str | None = None
    streams: list[StreamEnd] = dataclasses.field(default_factory=list)
    consumers: list[ConsumerName] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Readiness:
    """What one consumer's ``/readyz`` answered."""

    url: str
    reachable: bool = False
    http_status: int | None = None
    ready: bool | None = None
    dependencies: dict[str, bool] = dataclasses.field(default_factory=dict)
    partitions: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None  # unreachable, or an answer of the wrong shape


@dataclasses.dataclass
class S3Object:
    key: str
    time: float  # LastModified (Unix seconds)
    size: int


@dataclasses.dataclass
class Digest:
    stream: str
    key: str | None = None
    time: float | None = None
    last_offset: int | None = None


@dataclasses.dataclass
class DeadLetters:
    objects: int = 0  # dead-letter files written in the last day
    bytes: int = 0
    newest: S3Object | None = None
    # False when the listing stopped at its bound: the counts are then a lower bound.
    complete: bool = True


@dataclasses.dataclass
class Archive:
    bucket: str
    prefix: str
    reachable: bool = False
    error: str | None = None
    newest_object: S3Object | None = None
    digests: list[Digest] = dataclasses.field(default_factory=list)
    dead_letters: DeadLetters = dataclasses.field(default_factory=DeadLetters)


@dataclasses.dataclass
class MonthlyIndex:
    index: str
    documents: int | None
    health: str | None


@dataclasses.dataclass
class Index:
    prefix: str
    reachable: bool = False
    error: str | None = None
    indices: list[MonthlyIndex] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SpoolFolder:
    name: str
    records: int
    bytes: int


@dataclasses.dataclass
class Spool:
    path: str
    exists: bool = False
    records: int = 0
    bytes: int = 0
    folders: list[SpoolFolder] = dataclasses.field(default_factory=list)
    error: str | None = None


@dataclasses.dataclass
class Status:
    """What status found; a part that was not asked for (``--only``) is None."""

    checked_at: float
    stale_after: float
    broker: Broker | None
    readiness: list[Readiness]
    archive: Archive | None
    index: Index | None
    spool: Spool | None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def checked(self) -> list[str]:
        """The parts that were read, in the order of :data:`PARTS`."""
        return [part for part in PARTS if getattr(self, part) is not None]


def default_stale_after(flush_interval: float) -> float:
    return 2 * flush_interval + STALE_GRACE


def waited(backlog: Backlog, now: float) -> float | None:
    """How long the oldest unprocessed record has waited (None: nothing waits)."""
    if backlog.oldest_waiting_time is None:
        return None
    return max(0.0, now - backlog.oldest_waiting_time)


def problems(status: Status) -> list[str]:
    """Why status is unhealthy, one line each; [] when healthy."""
    found: list[str] = []
    if status.broker is not None:
        found += _broker_problems(status.broker, status.checked_at, status.stale_after)
    for answer in status.readiness:
        if answer.error is not None:
            found.append(f"consumer at {answer.url}: {answer.error}")
        elif not answer.ready:
            said = "; ".join(answer.problems) or "no reason given"
            found.append(f"consumer at {answer.url} is not ready: {said}")
    if status.archive is not None and status.archive.error is not None:
        found.append(f"S3: {status.archive.error}")
    if status.index is not None:
        if status.index.error is not None:
            found.append(f"OpenSearch: {status.index.error}")
        found += [f"OpenSearch: index {index.index} is red" for index in status.index.indices
                  if index.health == "red"]
    if status.spool is not None and status.spool.error is not None:
        found.append(f"spool: {status.spool.error}")
    return found


def _broker_problems(broker: Broker, now: float, stale_after: float) -> list[str]:
    found: list[str] = []
    if broker.error is not None:
        found.append(f"RabbitMQ: {broker.error}")
    found += [f"RabbitMQ: stream {end.stream!r} does not exist"
              for end in broker.streams if not end.exists]
    for consumer in broker.consumers:
        for backlog in consumer.streams:
            wait = waited(backlog, now)
            if wait is not None and wait > stale_after:
                found.append(
                    f"consumer {consumer.name!r} is stale on {backlog.stream!r}: its oldest "
                    f"unprocessed record (offset {backlog.oldest_waiting_offset}) has waited "
                    f"{wait:.0f} s (more than {stale_after:g} s)"
                )
    return found


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def as_json(status: Status) -> dict[str, Any]:
    """The ``--json`` document: every figure, times as RFC 3339, and the problems; a part
    that was not checked is null, and ``checked`` lists those that were."""
    now = status.checked_at
    return {
        "healthy": status.healthy,
        "problems": status.problems,
        "checked_at": iso(now),
        "checked": status.checked,
        "stale_after_seconds": status.stale_after,
        "broker": None if status.broker is None else _broker_json(status.broker, now),
        "consumer_urls": [dataclasses.asdict(answer) for answer in status.readiness],
        "archive": None if status.archive is None else _archive_json(status.archive),
        "index": None if status.index is None else {
            "prefix": status.index.prefix,
            "reachable": status.index.reachable,
            "error": status.index.error,
            "indices": [dataclasses.asdict(item) for item in status.index.indices],
        },
        "spool": None if status.spool is None else dataclasses.asdict(status.spool),
    }


def _broker_json(broker: Broker, now: float) -> dict[str, Any]:
    def backlog(item: Backlog) -> dict[str, Any]:
        return {
            "stream": item.stream,
            "stored_offset": item.stored_offset,
            "lag": item.lag,
            "oldest_waiting_offset": item.oldest_waiting_offset,
            "oldest_waiting_time": iso(item.oldest_waiting_time),
            "waited_seconds": _rounded(waited(item, now)),
        }

    return {
        "reachable": broker.reachable,
        "error": broker.error,
        "streams": [{"stream": end.stream, "exists": end.exists, "end_offset": end.end_offset,
                     "end_time": iso(end.end_time)} for end in broker.streams],
        "consumers": [{"name": consumer.name,
                       "streams": [backlog(item) for item in consumer.streams]}
                      for consumer in broker.consumers],
        "lag_note": "lag counts offsets, the group's offset-tracking entries included: an "
                    "upper bound in records, 0 when caught up",
    }


def _archive_json(archive: Archive) -> dict[str, Any]:
    def s3_object(item: S3Object | None) -> dict[str, Any] | None:
        if item is None:
            return None
        return {"key": item.key, "time": iso(item.time), "size": item.size}

    return {
        "bucket": archive.bucket,
        "prefix": archive.prefix,
        "reachable": archive.reachable,
        "error": archive.error,
        "newest_object": s3_object(archive.newest_object),
        "digests": [{"stream": digest.stream, "key": digest.key, "time": iso(digest.time),
                     "last_offset": digest.last_offset} for digest in archive.digests],
        "dead_letters_last_day": {
            "objects": archive.dead_letters.objects,
            "bytes": archive.dead_letters.bytes,
            "newest": s3_object(archive.dead_letters.newest),
            "complete": archive.dead_letters.complete,
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
