"""deploy/prometheus/alerts.yml: valid for promtool, each alert unit-tested by promtool (fires on
its case, not on the healthy series beside it), and reading only metrics the catalogue has."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy._assets import ALERT_TESTS, ALERTS, metric_names, tool, unknown_names
from tests.deploy._prometheus_server import Server


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alert_names() -> list[str]:
    return [rule["alert"] for rule in _rules() if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = subprocess.run(
        [tool("promtool"), "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issues_alerts_are_all_there() -> None:
    assert set(_alert_names()) >= {
        "AuditLoggingConsumerLagGrowing",
        "AuditLoggingDeadLetters",
        "AuditLoggingSpoolGrowing",
        "AuditLoggingArchiveStale",
        "AuditLoggingDependencyDown",
        "AuditLoggingNoActiveConsumer",
        "AuditLoggingConsumersGone",
        "AuditLoggingCaptureRecordsLost",
    }
    assert len(set(_alert_names())) == len(_alert_names()), "an alert name is used twice"


def test_each_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    assert document["rule_files"] == [ALERTS.name]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alert_names())
    assert alerts - fires == set(), "never shown firing"
    assert alerts - quiet == set(), "never shown quiet"
    assert (fires | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_the_rules_read_only_catalogue_metrics() -> None:
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} reads no metric we know of"
        assert unknown_names(names) == [], rule["alert"]


def test_every_alert_says_how_bad_and_what_happened() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.slow
def test_a_real_prometheus_evaluates_every_rule_without_error(prometheus: Server) -> None:
    """On series as prometheus-client exposes them (vector matching errors show only here)."""
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert sorted(rules) == sorted(_alert_names())
    for name, rule in rules.items():
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), name
