"""A bounded HTTP load: a fixed list of requests sent by a fixed number of client threads,
each request on a new connection (as gunicorn's sync workers close every one), with the
latency of each. It stops by itself when the list is done; only 127.0.0.1 is a target."""

from __future__ import annotations

import dataclasses
import http.client
import threading
import time
from collections.abc import Sequence
from typing import Final

HOST: Final = "127.0.0.1"
TIMEOUT: Final = 60.0


@dataclasses.dataclass(frozen=True)
class Load:
    latencies: list[float]  # seconds, one per request that answered
    elapsed: float  # seconds from the first request sent to the last answer
    failed: int  # requests that got no answer or not a 200
    failures: list[str]  # what went wrong with the first few of those

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed


def drive(port: int, paths: Sequence[str], concurrency: int, method: str = "POST") -> Load:
    """Send ``method`` to each of ``paths`` on 127.0.0.1:``port``, ``concurrency`` at a time
    (client ``n`` takes paths n, n + concurrency, ...)."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[list[str]] = [[] for _ in range(concurrency)]

    def client(n: int) -> None:
        clock, mine, failed = time.perf_counter, latencies[n], failures[n]
        for path in paths[n::concurrency]:
            began = clock()
            try:
                status = _request(port, method, path)
            except OSError as exc:
                failed.append(f"{path}: {exc!r}")
                continue
            if status == 200:
                mine.append(clock() - began)
            else:
                failed.append(f"{path}: HTTP {status}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    wrong = [x for failed in failures for x in failed]
    return Load([x for mine in latencies for x in mine], elapsed, len(wrong), wrong[:10])


def _request(port: int, method: str, path: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
