"""Reading a consumer's ``/metrics`` and ``/readyz`` over HTTP, as Prometheus and a probe do."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(port: int, path: str) -> tuple[int, bytes]:
    """(status, body); (0, b"") when nothing answers (the process is starting or gone)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def scrape(port: int) -> Samples:
    """Every sample of /metrics by (name, sorted labels); empty when nothing answers."""
    status, body = get(port, "/metrics")
    if status != 200:
        return {}
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(port: int, name: str, **labels: str) -> float | None:
    return scrape(port).get((name, tuple(sorted(labels.items()))))


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = get(port, "/readyz")
    return status, (json.loads(body) if status in (200, 503) else {})
