"""deploy/grafana/audit-logging.json: a dashboard whose every query is PromQL a real Prometheus
runs and finds data for, on metrics exposed as the package exposes them, and which shows every
metric of the catalogue."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from audit_logging.metrics.catalogue import METRICS
from tests.deploy._assets import DASHBOARD, catalogue_metric, metric_names, unknown_names
from tests.deploy._prometheus_server import Server

# What Grafana puts in place of its own variables, for a query sent straight to Prometheus.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__range": "1h", "__interval": "15s"}
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _variable_values() -> dict[str, str]:
    values = dict(GRAFANA_VARIABLES)
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            values[variable["name"]] = variable["allValue"]
    return values


def _as_sent(expr: str) -> str:
    values = _variable_values()
    return _VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)


def test_every_panel_has_queries_a_title_and_a_place() -> None:
    panels = _dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "two panels share an id"
    for panel in _panels():
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    assert _dashboard()["uid"] == "audit-logging"


def test_the_queries_read_only_catalogue_metrics() -> None:
    for expr in _exprs():
        names = metric_names(expr)
        assert names, f"reads no metric we know of: {expr}"
        assert unknown_names(names) == [], expr
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            assert unknown_names(metric_names(variable["definition"])) == []


@pytest.mark.parametrize("side", ["consumer", "capture", "api"])
def test_every_catalogue_metric_of_a_side_is_on_the_dashboard(side: str) -> None:
    shown = {catalogue_metric(name) for expr in _exprs() for name in metric_names(expr)}
    missing = [spec.name for spec in METRICS if spec.side == side and spec.name not in shown]
    assert missing == []


def test_every_grafana_variable_is_known() -> None:
    known = _variable_values()
    for expr in _exprs():
        for match in _VARIABLE.finditer(expr):
            assert (match.group(1) or match.group(2)) in known, expr
        assert "$" not in _as_sent(expr)


@pytest.mark.slow
def test_a_real_prometheus_runs_every_query_and_finds_data(prometheus: Server) -> None:
    for panel in _panels():
        for target in panel["targets"]:
            answer = prometheus.query(_as_sent(target["expr"]))
            assert answer["status"] == "success", (panel["title"], target["expr"], answer)
            assert answer["data"]["result"], (panel["title"], target["expr"], "no data")


@pytest.mark.slow
def test_a_bad_query_is_refused_by_that_prometheus(prometheus: Server) -> None:
    """The check above can fail: the server does refuse PromQL it cannot parse."""
    bad = "sum by (stream (rate(audit_logging_consumer_records_consumed_total[1m]))"
    answer = prometheus.query(bad)
    assert answer["status"] == "error"
    assert answer["errorType"] == "bad_data"


@pytest.mark.slow
def test_the_stream_variable_lists_the_streams(prometheus: Server) -> None:
    (variable,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == "stream"]
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"])
    assert match, variable["definition"]
    answer = prometheus.get(f"/api/v1/label/{match.group(2)}/values", **{"match[]": match.group(1)})
    assert answer["data"] == ["s1", "s2"]
