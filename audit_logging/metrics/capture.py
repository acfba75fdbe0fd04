"""The capture side's metrics, for an app to export with prometheus-client.

    from audit_logging.metrics.capture import register_capture_metrics
    register_capture_metrics()          # into prometheus_client.REGISTRY, once

or, with a registry of your own, ``registry.register(capture_collector())``.

The collector reads the counts every publisher of the process keeps anyway, at scrape time:
logging a record costs nothing more with it registered. Counts are per process (a forked
worker starts from zero); in a multi-process server, scrape each worker or use
prometheus-client's multiprocess mode for your own metrics and this collector per worker.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from audit_logging import _capture_stats
from audit_logging.metrics._prometheus import require_prometheus
from audit_logging.metrics.catalogue import spec

_client = require_prometheus()
_core = importlib.import_module("prometheus_client.core")
_go_float = importlib.import_module("prometheus_client.utils").floatToGoString

_PREFIX = "audit_logging_capture_"
_COUNTERS = {
    "records_accepted_total": "accepted",
    "records_published_total": "published",
    "records_spooled_total": "spooled",
    "records_replayed_total": "replayed",
    "records_lost_total": "lost",
}
_REJECTED = _PREFIX + "records_rejected_total"
_LATENCY = _PREFIX + "confirm_latency_seconds"


class CaptureCollector:
    """A prometheus-client collector of the ``audit_logging_capture_*`` metrics of every
    audit handler in this process."""

    def collect(self) -> Iterator[Any]:
        return iter(self._families(_capture_stats.snapshot()))

    def describe(self) -> Iterator[Any]:
        # Names only: registering checks them for clashes without taking a snapshot.
        return iter(self._families(None))

    def _families(self, now: _capture_stats.Snapshot | None) -> list[Any]:
        families: list[Any] = []
        for name, key in _COUNTERS.items():
            family = _counter(_PREFIX + name)
            if now is not None:
                family.add_metric([], now.counts.get(key, 0))
            families.append(family)
        rejected = _counter(_REJECTED, ["reason"])
        if now is not None:
            for reason, count in now.rejected.items():
                rejected.add_metric([reason], count)
        families.append(rejected)
        gauges = now.gauges if now is not None else _capture_stats.Gauges()
        for name, value in (
            ("queue_records", gauges.queue_records),
            ("spool_records", gauges.spool_records),
            ("spool_bytes", gauges.spool_bytes),
            ("unconfirmed_records", gauges.unconfirmed),
        ):
            family = _gauge(_PREFIX + name)
            if now is not None:
                family.add_metric([], value)
            families.append(family)
        connected = _gauge(_PREFIX + "broker_connected")
        if now is not None and now.connected is not None:
            # No sample while no handler is open: there is no link to be up or down.
            connected.add_metric([], 1 if now.connected else 0)
        families.append(connected)
        latency = _core.HistogramMetricFamily(_LATENCY, spec(_LATENCY).help)
        if now is not None:
            latency.add_metric([], _cumulative(now.latency), now.latency.sum)
        families.append(latency)
        return families


def _counter(name: str, labels: list[str] | None = None) -> Any:
    return _core.CounterMetricFamily(name, spec(name).help, labels=labels)


def _gauge(name: str) -> Any:
    return _core.GaugeMetricFamily(name, spec(name).help)


def _cumulative(latency: _capture_stats.ConfirmLatency) -> list[tuple[str, float]]:
    buckets = list(latency.buckets)
    bounds = [*map(_go_float, _capture_stats.LATENCY_BOUNDS), "+Inf"]
    out, total = [], 0
    for bound, count in zip(bounds, buckets, strict=True):
        total += count
        out.append((bound, float(total)))
    return out


def capture_collector() -> CaptureCollector:
    """A new collector, for ``registry.register(...)`` in a registry of your own."""
    return CaptureCollector()


_registered: weakref.WeakKeyDictionary[Any, CaptureCollector] = weakref.WeakKeyDictionary()
_register_lock = threading.Lock()


def register_capture_metrics(registry: Any = None) -> CaptureCollector:
    """Register the capture metrics in ``registry`` (prometheus-client's default
    ``REGISTRY`` if None) and return the collector; registering again in the same registry
    returns the collector already there."""
    target = _client.REGISTRY if registry is None else registry
    with _register_lock:
        collector = _registered.get(target)
        # (unless it was unregistered since: the registry's own record says)
        if collector is None or collector not in getattr(
            target, "_collector_to_names", {collector: ()}
        ):
            collector = CaptureCollector()
            target.register(collector)
            _registered[target] = collector
        return collector
