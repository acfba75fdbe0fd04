"""What the tests of deploy/ share: the files, the real tools, the catalogue's names in PromQL
and the consumer's own argument parser."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from audit_logging.consumer.__main__ import build_parser
from audit_logging.metrics.catalogue import BY_NAME

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "audit-logging.json"
SYSTEMD_UNIT = DEPLOY / "systemd" / "audit-logging-consumer.service"
SYSTEMD_ENV = DEPLOY / "systemd" / "consumer.env.example"
KUBERNETES = DEPLOY / "kubernetes" / "consumer.yaml"

# Series Prometheus makes itself, which rules may use beside the catalogue's.
PROMETHEUS_OWN = frozenset({"up"})
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
_METRIC = re.compile(r"\b(audit_logging_[a-z0-9_]+|up)\b(?!\s*\()")


def tool(name: str) -> str:
    """The path of a program the tests need; fails (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make services` (devstack/prometheus.sh install "
            "installs Debian's prometheus package, with promtool)"
        )
    return path


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (ours, and Prometheus's ``up``)."""
    return set(_METRIC.findall(expr))


def unknown_names(names: Iterable[str]) -> list[str]:
    """The names that are neither a catalogue metric nor a series one exposes: a histogram is
    read as ``_bucket``, ``_sum`` or ``_count``, never bare; a counter's name ends in ``_total``."""
    return sorted(name for name in names if catalogue_metric(name) is None)


def catalogue_metric(name: str) -> str | None:
    """The catalogue metric a series name belongs to, or None."""
    if name in PROMETHEUS_OWN:
        return name
    spec = BY_NAME.get(name)
    if spec is not None:
        return None if spec.kind == "histogram" else name
    for suffix in _HISTOGRAM_SERIES:
        base = BY_NAME.get(name.removesuffix(suffix))
        if name.endswith(suffix) and base is not None and base.kind == "histogram":
            return base.name
    return None


def consumer_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by ``python -m audit_logging.consumer``'s own parser; fails with its
    message when the consumer would refuse them."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"the consumer refuses {argv}: {stderr.getvalue().strip()}")
