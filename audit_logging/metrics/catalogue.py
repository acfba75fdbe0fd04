"""Every metric this package exports: its name, type, labels, unit and meaning.

One list, so the code that makes the metrics, the README's table, the alert rules and the
dashboard all agree on a name (tests hold each of them to it). Names follow Prometheus
conventions: ``audit_logging_<side>_…``, counters end in ``_total``, units are base units
(seconds, bytes). Importing this module needs nothing outside the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["counter", "gauge", "histogram"]
Side = Literal["capture", "consumer", "api"]

# Seconds. Confirms and index writes are milliseconds when healthy and seconds when not;
# an S3 put or a whole batch can take longer.
FAST_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Kind
    side: Side
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def base_name(self) -> str:
        """The name prometheus-client is given: it adds ``_total`` to a counter itself."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name


_SIDES: Final[dict[str, Side]] = {"capture": "capture", "consumer": "consumer", "api": "api"}


def _spec(
    name: str, kind: Kind, help: str, *labels: str, buckets: tuple[float, ...] = ()
) -> MetricSpec:
    return MetricSpec(name, kind, _SIDES[name.split("_")[2]], help, labels, buckets)


METRICS: Final[tuple[MetricSpec, ...]] = (
    # -- capture: the handler in the app's process -------------------------------------------
    _spec("audit_logging_capture_records_accepted_total", "counter",
          "Records the handler took from the app (put on its queue)."),
    _spec("audit_logging_capture_records_rejected_total", "counter",
          "Records refused because they cannot become a valid record.", "reason"),
    _spec("audit_logging_capture_records_published_total", "counter",
          "Records the broker confirmed (straight from the queue or replayed from the spool)."),
    _spec("audit_logging_capture_records_spooled_total", "counter",
          "Records written to the local spool because the broker was unreachable or slow."),
    _spec("audit_logging_capture_records_replayed_total", "counter",
          "Spooled records the broker later confirmed."),
    _spec("audit_logging_capture_records_lost_total", "counter",
          "Records that could be neither published nor spooled (each one is also logged)."),
    _spec("audit_logging_capture_queue_records", "gauge",
          "Records on the in-memory queue, waiting for the publisher thread."),
    _spec("audit_logging_capture_spool_records", "gauge",
          "Records in the local spool not yet confirmed by the broker."),
    _spec("audit_logging_capture_spool_bytes", "gauge",
          "Bytes the local spool holds on disk."),
    _spec("audit_logging_capture_unconfirmed_records", "gauge",
          "Records sent to the broker and not yet confirmed."),
    _spec("audit_logging_capture_confirm_latency_seconds", "histogram",
          "Time from sending a record to the broker's confirm.", buckets=FAST_BUCKETS),
    _spec("audit_logging_capture_broker_connected", "gauge",
          "1 while the publisher is connected to the broker, else 0."),
    # -- consumer ------------------------------------------------------------------------------
    _spec("audit_logging_consumer_records_consumed_total", "counter",
          "Records read from the stream.", "stream"),
    _spec("audit_logging_consumer_records_indexed_total", "counter",
          "Records written to OpenSearch.", "stream"),
    _spec("audit_logging_consumer_records_archived_total", "counter",
          "Records written to the Parquet archive in S3.", "stream"),
    _spec("audit_logging_consumer_records_dead_lettered_total", "counter",
          "Messages written to the dead-letter folder, by reason.", "stream", "reason"),
    _spec("audit_logging_consumer_duplicates_dropped_total", "counter",
          "Messages dropped because the same log_id with the same content was already kept.",
          "stream"),
    _spec("audit_logging_consumer_lag_messages", "gauge",
          "Committed end of the stream minus the last offset processed (0 when caught up).",
          "stream"),
    _spec("audit_logging_consumer_lag_seconds", "gauge",
          "How long the oldest unprocessed record has waited (0 when caught up).", "stream"),
    _spec("audit_logging_consumer_batch_duration_seconds", "histogram",
          "Time to make one batch durable (index, archive, offset).", buckets=SLOW_BUCKETS),
    _spec("audit_logging_consumer_bulk_duration_seconds", "histogram",
          "Time of one bulk request to OpenSearch.", buckets=FAST_BUCKETS),
    _spec("audit_logging_consumer_s3_put_duration_seconds", "histogram",
          "Time of one object put to S3.", buckets=SLOW_BUCKETS),
    _spec("audit_logging_consumer_retries_total", "counter",
          "Retries after a failure of a dependency.", "sink"),
    _spec("audit_logging_consumer_stored_offset", "gauge",
          "The offset last stored in RabbitMQ for this consumer name.", "stream"),
    _spec("audit_logging_consumer_last_archive_timestamp_seconds", "gauge",
          "Unix time of the last archive object written.", "stream"),
    _spec("audit_logging_consumer_active", "gauge",
          "1 while this process is the active consumer of the stream or partition, 0 on standby.",
          "stream"),
    _spec("audit_logging_consumer_dependency_up", "gauge",
          "1 while the dependency answers, else 0.", "dependency"),
    _spec("audit_logging_consumer_flush_interval_seconds", "gauge",
          "The consumer's flush interval (AUDIT_LOG_FLUSH_INTERVAL), for staleness alerts."),
    # -- API -----------------------------------------------------------------------------------
    _spec("audit_logging_api_requests_total", "counter",
          "HTTP requests answered, by route template and status code.", "route", "status"),
    _spec("audit_logging_api_request_duration_seconds", "histogram",
          "Time to answer a request, by route template.", "route", buckets=FAST_BUCKETS),
    _spec("audit_logging_api_auth_failures_total", "counter",
          "Requests refused for a missing or wrong token.", "reason"),
    _spec("audit_logging_api_backend_duration_seconds", "histogram",
          "Time a request spent reading one tier, by backend.", "backend",
          buckets=FAST_BUCKETS),
)  # fmt: skip

BY_NAME: Final[dict[str, MetricSpec]] = {spec.name: spec for spec in METRICS}

# Label values a dashboard or alert may rely on.
DEPENDENCIES: Final = ("broker", "opensearch", "s3")


def spec(name: str) -> MetricSpec:
    return BY_NAME[name]


def markdown_table(side: Side | None = None) -> str:
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for metric in METRICS:
        if side is None or metric.side == side:
            labels = ", ".join(f"`{label}`" for label in metric.labels) or "-"
            rows.append(f"| `{metric.name}` | {metric.kind} | {labels} | {metric.help} |")
    return "\n".join(rows) + "\n"
