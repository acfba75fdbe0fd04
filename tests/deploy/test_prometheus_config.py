"""deploy/prometheus/prometheus.yml: a configuration promtool accepts, scraping the jobs the
alert rules name."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy._assets import ALERTS, PROMETHEUS_CONFIG, tool


def test_promtool_checks_the_example_configuration(tmp_path: Path) -> None:
    # Installed as it would be: beside the rules and the API's token file it names.
    shutil.copy(PROMETHEUS_CONFIG, tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (api,) = [job for job in config["scrape_configs"] if job["job_name"] == "audit-logging-api"]
    (tmp_path / api["authorization"]["credentials_file"]).write_text("a-token\n")

    result = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid prometheus config file syntax" in result.stdout
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_it_scrapes_the_jobs_the_rules_name() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"audit-logging-consumer", "audit-logging-api", "audit-logging-apps"}
    assert config["rule_files"] == [ALERTS.name]
    rules = ALERTS.read_text()
    assert 'job="audit-logging-consumer"' in rules
    api = next(job for job in config["scrape_configs"] if job["job_name"] == "audit-logging-api")
    assert api["authorization"]["type"] == "Bearer"
