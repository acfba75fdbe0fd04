"""The Django benchmark's harness in its smoke mode (a few requests a variant), so that it
cannot rot: the gunicorn servers of every variant start on devstack's PostgreSQL, answer,
audit every request exactly once (the harness counts django-auditlog's rows and this
library's records in its stream, and raises otherwise), and the rows of the report are
there. The figures themselves are not asserted: bench/ owns them."""

from __future__ import annotations

import math

import pytest

from audit_logging.settings import Settings
from bench import bench_django

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_smoke_run_audits_every_request_and_reports_each_ratio(settings: Settings) -> None:
    results = bench_django.measure(settings, bench_django.SMOKE)

    measures = {r.measure for r in results}
    ours = bench_django.LABELS["ours"]
    for base in ("django-auditlog", "no audit"):
        for what in ("requests/s", "p50 latency", "p99 latency", "CPU per request"):
            assert f"{what}, {ours} vs {base}" in measures
    goals = {r.measure: r.goal for r in results if r.met is not None}
    assert goals == {
        f"requests/s, {ours} vs django-auditlog": ">= 1.1x",
        f"requests/s, {ours} vs no audit": ">= 0.9x",
    }
    for result in results:
        assert result.area == "django"
        assert result.baseline is not None
        assert math.isfinite(result.ours), result
        assert math.isfinite(result.baseline), result
        if result.unit != "ms" or "CPU" not in result.measure:
            # CPU time is counted in clock ticks: a few requests may use less than one.
            assert result.ours > 0, result
            assert result.baseline > 0, result
