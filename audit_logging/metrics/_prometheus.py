"""prometheus-client, from the ``metrics`` extra, and metrics made from the catalogue."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from audit_logging.errors import MissingExtraError
from audit_logging.metrics.catalogue import MetricSpec, spec


def require_prometheus() -> ModuleType:
    """The prometheus_client module, or an error naming the extra that installs it."""
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        raise MissingExtraError("metrics", "prometheus-client") from None


def make(name: str, registry: Any) -> Any:
    """The prometheus-client metric the catalogue describes under ``name``, registered in
    ``registry`` (a ``CollectorRegistry``)."""
    return make_from(spec(name), registry)


def make_from(metric: MetricSpec, registry: Any) -> Any:
    client = require_prometheus()
    common: dict[str, Any] = {"labelnames": metric.labels, "registry": registry}
    if metric.kind == "counter":
        return client.Counter(metric.base_name, metric.help, **common)
    if metric.kind == "gauge":
        return client.Gauge(metric.base_name, metric.help, **common)
    return client.Histogram(metric.base_name, metric.help, buckets=metric.buckets, **common)
