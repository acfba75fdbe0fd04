"""An app process for the broker-outage test: logs 20,000 audit records while RabbitMQ is
stopped for 10 s, timing every emit, and prints what it saw as JSON.

It runs as its own process so the timings are an app's, not the test runner's (whose large
heap makes each full garbage collection pause every thread for ~100 ms).
"""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable

from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from tests._ports import port_open
from tests.handlers._processes import REPO


def _gc_timer(pauses: list[tuple[int, float]]) -> Callable[[str, dict[str, int]], None]:
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - started[0]) * 1000
        if took > 1:
            pauses.append((info["generation"], round(took, 2)))

    return on_gc


def main() -> int:
    settings = Settings.load(env_file=None)
    handler = AuditHandler(settings=settings)
    audit = logging.getLogger("audit")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    for i in range(2_000):  # some before the outage, so a connection is up and in use
        audit.info("before", extra={"action": "CREATE", "object_id": str(i)})
    # As servers commonly do once started up (gunicorn --preload apps, for one): move what
    # is loaded so far out of the collector's way, so a full collection scans only what is
    # new. Without it a full collection of the imported modules (~25 ms here) stops every
    # thread at random, emit included, which is the interpreter's pause, not emit's.
    # bench/ measures emit with the collector left as it is.
    gc.collect()
    gc.freeze()
    ctl = f"bash {REPO / 'devstack' / 'rabbitmq.sh'} ctl"
    # Started before the timed loop: a fork while timing would stall this process.
    outage = subprocess.Popen(
        f"{ctl} stop_app >/dev/null && sleep 10 && {ctl} start_app >/dev/null", shell=True
    )
    deadline = time.monotonic() + 60
    while port_open(settings.rabbitmq_stream_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = not port_open(settings.rabbitmq_stream_port)
    timings = []
    pauses: list[tuple[int, float]] = []  # (generation, ms) of collections over 1 ms
    gc.callbacks.append(_gc_timer(pauses))
    slow: list[dict[str, object]] = []
    for i in range(2_000, 20_000):
        started = time.perf_counter()
        collections = len(pauses)
        audit.info("during", extra={"action": "CREATE", "object_id": str(i)})
        took = time.perf_counter() - started
        timings.append(took)
        if took > 0.005:
            slow.append({"i": i, "ms": round(took * 1000, 2), "gc": pauses[collections:]})
        if i % 500 == 0:
            time.sleep(0.2)  # spread the records over the outage
    outage_rc = outage.wait(timeout=120)
    left = handler.flush(timeout=120)
    stats = handler.stats()
    handler.close(timeout=10)
    timings.sort()
    json.dump({
        "stopped": stopped, "outage_rc": outage_rc, "left": left, "stats": stats,
        "slowest_ms": timings[-1] * 1000, "p99_ms": timings[int(len(timings) * 0.99)] * 1000,
        "over_5ms": sum(t > 0.005 for t in timings), "slow": slow[:10],
        "gc_pauses_over_1ms": pauses[:20],
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
