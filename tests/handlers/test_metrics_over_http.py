"""The capture metrics as an operator sees them: an app process logs audit records through
the real RabbitMQ and serves prometheus-client's /metrics; the test scrapes it over HTTP
while a proxy it owns makes the broker unreachable, then reachable again. The shared broker
is never stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit_logging.settings import Settings
from tests._ports import cut_own_connections, free_port
from tests._proxy import TcpProxy, tcp_proxy
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env

pytestmark = pytest.mark.services

# An app: the handler from the environment, the capture metrics on prometheus-client's own
# HTTP server, a record every 10 ms until its stdin closes; then it drains and says its stats.
APP = """
import logging, sys, threading, time, json
import prometheus_client
import audit_logging
from audit_logging.metrics.capture import register_capture_metrics

handler = audit_logging.configure(env_file=None)
register_capture_metrics()
prometheus_client.start_http_server(int(sys.argv[1]), addr="127.0.0.1")
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
audit = logging.getLogger("audit")
sent = 0
while not stop.is_set():
    audit.info("m", extra={"action": "CREATE", "object_id": str(sent)})
    sent += 1
    time.sleep(0.01)
left = audit_logging.shutdown(timeout=30)
print(json.dumps(handler.stats() | {"sent": sent, "left": left}), flush=True)
"""

FAULT_SHOWS_WITHIN = 10.0
RECOVERY_WITHIN = 60.0


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def __call__(self) -> dict[str, float]:
        """Every sample of the page, by name (labels, if any, in the name as in the page)."""
        with urllib.request.urlopen(self.url, timeout=5) as response:
            page = response.read().decode("utf-8")
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
        return samples

    def wait(self, what: str, check: Callable[[dict[str, float]], bool], within: float
             ) -> dict[str, float]:
        """Scrape until ``check`` holds; fail with the last page's capture samples if it does
        not within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            try:
                seen = self()
            except OSError:
                seen = {}
            if seen and check(seen):
                return seen
            if time.monotonic() >= deadline:
                shown = {k: v for k, v in seen.items() if "capture" in k and "bucket" not in k}
                pytest.fail(f"not within {within:.0f} s: {what}; last scrape: {shown}")
            time.sleep(0.2)


C = "audit_logging_capture_"


@pytest.fixture
def proxy(settings: Settings) -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", settings.rabbitmq_stream_port) as proxy:
        yield proxy


def test_a_broker_outage_and_its_recovery_show_in_the_scraped_metrics(
    settings: Settings, proxy: TcpProxy
) -> None:
    metrics_port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(metrics_port)],
        env=app_env(settings, proxy.port, RABBITMQ_STREAM_HOST="127.0.0.1"),
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    scrape = Scraper(metrics_port)
    try:
        healthy = scrape.wait(
            "records published and confirms timed",
            lambda s: s.get(C + "broker_connected") == 1
            and s[C + "records_published_total"] >= 50
            and s[C + "confirm_latency_seconds_count"] >= 50,
            RECOVERY_WITHIN,
        )
        assert healthy[C + "records_spooled_total"] == 0
        assert healthy[C + "records_accepted_total"] >= healthy[C + "records_published_total"]
        assert healthy[C + "confirm_latency_seconds_sum"] > 0
        assert healthy[C + 'records_rejected_total{reason="no_action"}'] == 0

        # The broker becomes unreachable: the app's connections are cut and no new one is
        # taken (its first connection goes through the proxy).
        proxy.down()
        cut_own_connections(settings.rabbitmq_stream_port, app.pid)
        down = scrape.wait(
            "broker_connected 0, records spooled",
            lambda s: s[C + "broker_connected"] == 0
            and s[C + "records_spooled_total"] > 0
            and s[C + "spool_records"] > 0
            and s[C + "spool_bytes"] > 0,
            FAULT_SHOWS_WITHIN,
        )
        grown = scrape.wait(
            "the spool grows while the broker is away",
            lambda s: s[C + "spool_records"] > down[C + "spool_records"]
            and s[C + "records_spooled_total"] > down[C + "records_spooled_total"],
            FAULT_SHOWS_WITHIN,
        )
        assert grown[C + "records_lost_total"] == 0

        proxy.up()
        back = scrape.wait(
            "broker_connected 1, the spool replayed and empty",
            lambda s: s[C + "broker_connected"] == 1
            and s[C + "records_replayed_total"] >= grown[C + "spool_records"]
            and s[C + "spool_records"] == 0,
            RECOVERY_WITHIN,
        )
        assert back[C + "records_published_total"] > grown[C + "records_published_total"]
        assert back[C + "records_lost_total"] == 0
    finally:
        out, err = app.communicate(input="", timeout=60)
    assert app.returncode == 0, err
    stats = json.loads(out)
    assert stats["left"] == 0 and stats["lost"] == 0, stats
    assert stats["accepted"] == stats["sent"] == stats["published"], stats
    records = stream_records(settings, settings.rabbitmq_stream_name, stats["sent"])
    assert sorted(int(r["object_id"]) for r in records) == list(range(stats["sent"]))
