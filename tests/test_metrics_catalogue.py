"""Each exported metric is declared once (audit_logging.metrics.catalogue): the README's table
is made from it, and every name follows Prometheus's conventions."""

from __future__ import annotations

import re

import pytest

from audit_logging.metrics import catalogue
from audit_logging.metrics._prometheus import make_from
from tests._readme import assert_generated_block_is

_NAME = re.compile(r"audit_logging_(capture|consumer|api)_[a-z0-9]+(_[a-z0-9]+)*")


def test_the_readmes_metric_table_is_the_one_the_catalogue_makes() -> None:
    assert_generated_block_is(
        "metrics", catalogue.markdown_table(), "audit_logging.metrics.catalogue.markdown_table"
    )


@pytest.mark.parametrize("metric", catalogue.METRICS, ids=lambda metric: metric.name)
def test_a_name_says_its_side_its_type_and_its_unit(metric: catalogue.MetricSpec) -> None:
    assert _NAME.fullmatch(metric.name)
    assert metric.name.endswith("_total") == (metric.kind == "counter")
    if metric.kind == "histogram":
        assert metric.name.endswith("_seconds") and list(metric.buckets) == sorted(metric.buckets)
    # Base units only: no milliseconds, no kilobytes.
    assert not re.search(r"_(ms|milliseconds|kb|mb|minutes|hours)(_|$)", metric.name)
    assert metric.help.strip().endswith(".")
    # Labels whose values would come from records (unbounded) never become labels.
    assert not set(metric.labels) & {"log_id", "user_id", "object_id", "ip_address", "path"}


def test_every_metric_can_be_registered_under_its_name() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    for metric in catalogue.METRICS:
        made = make_from(metric, registry)
        if metric.labels:
            made = made.labels(*("x" for _ in metric.labels))
        if metric.kind == "counter":
            made.inc()
        elif metric.kind == "gauge":
            made.set(1)
        else:
            made.observe(0.2)
    text = generate_latest(registry).decode()
    for metric in catalogue.METRICS:
        suffix = "_bucket" if metric.kind == "histogram" else ""
        assert f"\n{metric.name}{suffix}{{" in text or f"\n{metric.name}{suffix} " in text, (
            metric.name)
