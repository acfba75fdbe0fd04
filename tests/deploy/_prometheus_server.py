"""A Prometheus server of the test's own (Debian's prometheus, on a free port, with a temporary
data folder) scraping an exporter of every catalogue metric, made by prometheus-client as the
package makes them. Started and stopped here; nothing else is touched."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit_logging.metrics._prometheus import make_from, require_prometheus
from audit_logging.metrics.catalogue import METRICS, MetricSpec
from tests._ports import free_port
from tests.deploy._assets import ALERTS, tool

JOB = "audit-logging-consumer"  # the job the rules look for
# Label values: s1 has an active consumer, s2 only a standby.
_VALUES = {
    "stream": ("s1", "s2"),
    "dependency": ("broker", "opensearch", "s3"),
    "reason": ("not_json",),
    "sink": ("s3",),
    "route": ("/api/audit-logs/search/",),
    "status": ("200",),
    "backend": ("index",),
}


def _observe(metric: Any, spec: MetricSpec, labels: dict[str, str]) -> None:
    child = metric.labels(**labels) if labels else metric
    if spec.kind == "counter":
        child.inc(3)
    elif spec.kind == "histogram":
        child.observe(spec.buckets[2])
    elif spec.name == "audit_logging_consumer_active":
        child.set(1 if labels["stream"] == "s1" else 0)
    elif spec.name == "audit_logging_consumer_last_archive_timestamp_seconds":
        child.set(time.time())
    else:
        child.set(5)


def _every_catalogue_metric() -> Any:
    client = require_prometheus()
    registry = client.CollectorRegistry()
    for spec in METRICS:
        metric = make_from(spec, registry)
        combos: list[dict[str, str]] = [{}]
        for label in spec.labels:
            combos = [{**c, label: value} for c in combos for value in _VALUES[label]]
        for labels in combos:
            _observe(metric, spec, labels)
    return registry


class Server:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:  # a bad query: 400 with a JSON error
            with error:
                return json.load(error)

    def query(self, expr: str) -> Any:
        return self.get("/api/v1/query", query=expr)


def _wait(
    what: str, check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 120
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"prometheus: {what} never happened; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _scraped_three_times(server: Server) -> bool:
    result = server.query(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 3')["data"]["result"]
    return bool(result)


def _rules_evaluated(server: Server) -> bool:
    groups = server.get("/api/v1/rules")["data"]["groups"]
    return bool(groups) and all(
        not rule["lastEvaluation"].startswith("0001") for g in groups for rule in g["rules"]
    )


@contextmanager
def prometheus_server(tmp_path: Path) -> Iterator[Server]:
    """A running server that has scraped the exporter three times and evaluated alerts.yml."""
    client = require_prometheus()
    exporter, thread = client.start_http_server(
        0, addr="127.0.0.1", registry=_every_catalogue_metric()
    )
    try:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter.server_port}"]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            server = Server(port)
            _wait("ready", lambda: _ready(server), process, log)
            _wait("three scrapes", lambda: _scraped_three_times(server), process, log)
            _wait("the rules' evaluation", lambda: _rules_evaluated(server), process, log)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        exporter.shutdown()
        exporter.server_close()
        thread.join()
