"""The consumer's own options (beyond :class:`~audit_logging.settings.Settings`) and ``--from``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from typing import Literal

from audit_logging.errors import ConfigurationError
from audit_logging.stream_offsets import DEFAULT_CONSUMER_NAME, check_consumer_name

__all__ = [
    "DEFAULT_CONSUMER_NAME",
    "DEFAULT_METRICS_HOST",
    "ConsumerOptions",
    "StartFrom",
    "check_consumer_name",
    "check_metrics_host",
    "parse_metrics_port",
    "parse_start",
]

DEFAULT_METRICS_HOST = "127.0.0.1"
MAX_OFFSET = 2**64 - 1  # a stream offset is an unsigned 64-bit number
StartKind = Literal["first", "last", "next", "offset", "timestamp"]


@dataclasses.dataclass(frozen=True)
class StartFrom:
    """Where a consumer name without a stored offset starts reading."""

    kind: StartKind
    # The offset for "offset"; milliseconds since the epoch for "timestamp".
    value: int | None = None

    def __str__(self) -> str:
        if self.kind == "offset":
            return f"offset {self.value}"
        if self.kind == "timestamp" and self.value is not None:
            moment = dt.datetime.fromtimestamp(self.value / 1000, dt.UTC)
            return f"timestamp {moment.isoformat()}"
        return self.kind


def parse_start(text: str, setting: str = "--from") -> StartFrom:
    """``first``, ``last``, ``next``, an offset (``12345``) or an ISO 8601 time with a zone."""
    word = text.strip()
    if word.lower() in ("first", "last", "next"):
        return StartFrom(word.lower())  # type: ignore[arg-type]
    refused = ConfigurationError(
        setting, f"must be first, last, next, an offset or an ISO 8601 time, got {text[:100]!r}"
    )
    # ASCII digits only (str.isdigit also takes '²', which int() refuses, and '٣'), and at
    # most an offset's 20 digits (int() refuses past 4,300).
    if word.isascii() and word.isdigit():
        if len(word) > 20 or int(word) > MAX_OFFSET:
            raise refused
        return StartFrom("offset", int(word))
    try:
        moment = dt.datetime.fromisoformat(word)
    except ValueError:
        raise refused from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(
            setting, f"needs a time zone (for example 2026-01-31T00:00:00Z), got {text!r}"
        )
    return StartFrom("timestamp", int(moment.timestamp() * 1000))


@dataclasses.dataclass(frozen=True)
class ConsumerOptions:
    """How one consumer process behaves; the sinks and the stream come from Settings."""

    consumer_name: str = DEFAULT_CONSUMER_NAME
    start: StartFrom = StartFrom("first")
    # A record is sent to OpenSearch at most this long after it arrived (see README: the
    # flush rule), so it is searchable within ~1.5 s at low load.
    index_delay: float = 0.1
    # Most documents in one bulk request; large batches are indexed in several.
    bulk_max_docs: int = 5000
    bulk_max_bytes: int = 16 * 1024 * 1024
    # After SIGTERM, how long the final flush may wait for OpenSearch and S3.
    shutdown_timeout: float = 30.0
    # Chunks the broker may send ahead of the one being handled (rstream's credits).
    credits: int = 8
    # log_ids remembered to drop a resent record, and how many stored messages to re-read at
    # start to refill that memory.
    dedup_window: int = 1_000_000
    dedup_warmup: int = 20_000
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_part_size: int = 16 * 1024 * 1024
    retention_interval: float = 24 * 3600.0
    # --verify-every: seconds between checks of the last complete day (None: never).
    verify_every: float | None = None
    # --metrics-port / --metrics-host: where /metrics, /healthz and /readyz are served
    # (None: not at all, and prometheus-client is not needed).
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST


def parse_metrics_port(text: str, flag: str = "--metrics-port") -> int:
    word = text.strip()
    if not (word.isascii() and word.isdigit() and len(word) <= 5 and 0 < int(word) < 65536):
        raise ConfigurationError(
            flag, f"must be a TCP port from 1 to 65535, got {text[:100]!r}"
        )
    return int(word)


def check_metrics_host(text: str, flag: str = "--metrics-host") -> str:
    """An IP address or a host name to listen on (0.0.0.0 or :: for every interface)."""
    word = text.strip()
    try:
        ipaddress.ip_address(word)
    except ValueError:
        if not _HOST_NAME.fullmatch(word):
            raise ConfigurationError(
                flag, f"must be an IP address or a host name, got {text[:100]!r}"
            ) from None
    return word


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
