"""``status --consumer-url`` against real consumers serving ``--metrics-port``: each one's
readiness and role are shown, and a consumer that is gone makes status unhealthy."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_logging.settings import Settings
from tests._ports import free_port
from tests.consumer._helpers import create_stream, publish_records, wait_for_offset, wait_until
from tests.consumer._scrape import readyz
from tests.consumer.conftest import StartConsumer
from tests.status._status import StatusRun, run_status

pytestmark = [pytest.mark.services]


def test_status_reads_each_consumers_readiness_and_notices_one_gone(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    create_stream(settings)
    publish_records(settings, 20)
    ports = [free_port(), free_port()]
    active = start_consumer("--flush-interval", "1", "--metrics-port", str(ports[0]))
    wait_for_offset(settings, 19, 120)
    standby = start_consumer(
        "--flush-interval", "1", "--metrics-port", str(ports[1]), workdir="standby")
    stream = settings.rabbitmq_stream_name
    wait_until("the standby to be ready", lambda: _ready(ports[1]), bool, 60)
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    args = [arg for url in urls for arg in ("--consumer-url", url)]

    def both_ready(run: StatusRun) -> bool:
        return run.returncode == 0 and all(r["ready"] for r in run.figures["consumer_urls"])

    run = wait_until("status to see both consumers ready",
                     lambda: run_status(settings, "--json", *args, cwd=tmp_path), both_ready, 60)
    roles = {r["url"]: r["partitions"] for r in run.figures["consumer_urls"]}
    assert roles == {urls[0]: {stream: "active"}, urls[1]: {stream: "standby"}}, roles
    assert all(r["dependencies"] == {"broker": True, "opensearch": True, "s3": True}
               for r in run.figures["consumer_urls"])
    screen = run_status(settings, *args, cwd=tmp_path)
    assert screen.returncode == 0 and f"{stream} active" in screen.stdout, screen

    assert standby.stop() == 0
    gone = run_status(settings, "--json", *args, cwd=tmp_path)
    assert gone.returncode == 1, gone
    (problem,) = gone.figures["problems"]
    assert urls[1] in problem, problem
    assert active.running()


def _ready(port: int) -> bool:
    try:
        return readyz(port)[0] == 200
    except OSError:
        return False
