"""What the consumer tells its metrics, and the metrics themselves when they are on.

The services call a :class:`Recorder` at batch and request granularity (a batch archived,
a bulk request answered, an S3 put, a retry); the per-message path only adds to an integer
(:attr:`~audit_logging.consumer.service.ConsumerService.consumed`) that a scrape reads. With
``--metrics-port`` absent the recorder is :data:`NO_METRICS`, whose methods do nothing, and
prometheus-client is never imported. The metrics' names, help and labels are the catalogue's
(:mod:`audit_logging.metrics.catalogue`).
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from audit_logging.metrics._prometheus import make

if TYPE_CHECKING:
    from audit_logging.consumer.archiver import ArchiveStats
    from audit_logging.consumer.batch import Batch
    from audit_logging.consumer.dead_letter import DeadLetter

Sink = Literal["broker", "opensearch", "s3"]
_PREFIX: Final = "audit_logging_consumer_"
# A dead letter's code is one of the consumer's own words (not_json, duplicate_log_id, ...);
# anything else is counted as "other" so a label can never grow from message content.
_REASON: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")


def reason_label(letter: DeadLetter) -> str:
    code = letter.code or letter.stage
    return code if _REASON.fullmatch(code) else "other"


class Watched(Protocol):
    """What the metrics read of one stream's service (from the endpoint's threads too:
    plain attribute reads, no locks)."""

    @property
    def stream(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def connected(self) -> bool: ...
    @property
    def consumed(self) -> int: ...
    @property
    def stored(self) -> int | None: ...
    @property
    def committed(self) -> int | None: ...
    def oldest_unprocessed_timestamp(self) -> float | None: ...


class Recorder:
    """The hooks, doing nothing: the consumer without ``--metrics-port``."""

    enabled = False

    def retry(self, sink: Sink) -> None:
        """A call to ``sink`` failed and will be tried again."""

    def bulk_seconds(self, seconds: float) -> None:
        """One bulk request to OpenSearch took ``seconds`` (answered or failed)."""

    def s3_put_seconds(self, seconds: float) -> None:
        """One attempt to write an object to S3 took ``seconds``."""

    def indexed(self, stream: str, count: int) -> None:
        """``count`` records of ``stream`` are now in OpenSearch."""

    def batch_done(
        self,
        stream: str,
        batch: Batch,
        stats: ArchiveStats,
        letters: Sequence[DeadLetter],
        seconds: float,
    ) -> None:
        """``batch`` is durable in both sinks, ``seconds`` after it closed."""


NO_METRICS: Final = Recorder()


class PrometheusRecorder(Recorder):
    """The hooks, updating the ``audit_logging_consumer_*`` metrics of ``registry``."""

    enabled = True

    def __init__(self, registry: Any, flush_interval: float) -> None:
        self.registry = registry
        m = {name: make(_PREFIX + name, registry) for name in _NAMES}
        self.consumed = m["records_consumed_total"]
        self._indexed = m["records_indexed_total"]
        self._archived = m["records_archived_total"]
        self._dead = m["records_dead_lettered_total"]
        self._duplicates = m["duplicates_dropped_total"]
        self.lag_messages = m["lag_messages"]
        self.lag_seconds = m["lag_seconds"]
        self._batch = m["batch_duration_seconds"]
        self._bulk = m["bulk_duration_seconds"]
        self._put = m["s3_put_duration_seconds"]
        self._retries = m["retries_total"]
        self.stored_offset = m["stored_offset"]
        self._archive_time = m["last_archive_timestamp_seconds"]
        self.active = m["active"]
        self.dependency_up = m["dependency_up"]
        m["flush_interval_seconds"].set(flush_interval)
        # Every sink's series exists from the start (at 0), so a rate over it is defined.
        self._retry_children = {sink: self._retries.labels(sink) for sink in _SINKS}

    def retry(self, sink: Sink) -> None:
        self._retry_children[sink].inc()

    def bulk_seconds(self, seconds: float) -> None:
        self._bulk.observe(seconds)

    def s3_put_seconds(self, seconds: float) -> None:
        self._put.observe(seconds)

    def indexed(self, stream: str, count: int) -> None:
        self._indexed.labels(stream).inc(count)

    def batch_done(
        self,
        stream: str,
        batch: Batch,
        stats: ArchiveStats,
        letters: Sequence[DeadLetter],
        seconds: float,
    ) -> None:
        self._batch.observe(seconds)
        self._archived.labels(stream).inc(stats.written)
        self._duplicates.labels(stream).inc(batch.duplicates)
        for reason, count in collections.Counter(map(reason_label, letters)).items():
            self._dead.labels(stream, reason).inc(count)
        if stats.written or letters:
            self._archive_time.labels(stream).set(time.time())

    def add_stream(self, stream: str) -> None:
        """Create ``stream``'s counters at 0, so they exist before its first batch."""
        for counter in (self._indexed, self._archived, self._duplicates, self.consumed):
            counter.labels(stream)


_SINKS: Final[tuple[Sink, ...]] = ("broker", "opensearch", "s3")
_NAMES: Final = (
    "records_consumed_total",
    "records_indexed_total",
    "records_archived_total",
    "records_dead_lettered_total",
    "duplicates_dropped_total",
    "lag_messages",
    "lag_seconds",
    "batch_duration_seconds",
    "bulk_duration_seconds",
    "s3_put_duration_seconds",
    "retries_total",
    "stored_offset",
    "last_archive_timestamp_seconds",
    "active",
    "dependency_up",
    "flush_interval_seconds",
)
