"""An app process for the broker-outage test: logs 20,000 audit records while RabbitMQ is
stopped for 10 s, watching what every emit calls, and prints what it saw as JSON.

"Never blocks the app on the network" is checked by what emit does, not by how long it
takes: a profiler hook on the app's thread notes every call emit makes into C that could
wait on the network or on another thread (a socket other than the loop's non-blocking
wake-up pair, a sleep, a select or poll, an explicit lock acquire). How long an emit takes is
bench/'s to measure (``capture``: p99 and max per call, broker down vs healthy); here the
times are only printed, to help read a failure.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

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


# C functions that wait: on a timer, on file descriptors, or on another thread.
WAITING_CALLS: Final = frozenset({
    "sleep", "select", "poll", "epoll.poll", "devpoll.poll", "kqueue.control",
    "lock.acquire", "RLock.acquire", "lock.acquire_lock", "lock.__enter__", "RLock.__enter__",
})


def _is_local_wakeup(sock: socket.socket) -> bool:
    """The event loop's self-pipe: a Unix socket pair that never blocks."""
    return sock.family == socket.AF_UNIX and not sock.getblocking()


def _waits_watcher(allowed_locks: tuple[object, ...], seen: list[str],
                   ) -> Callable[[FrameType, str, Any], None]:
    def on_call(frame: FrameType, event: str, arg: Any) -> None:
        if event != "c_call":
            return
        owner = getattr(arg, "__self__", None)
        name = getattr(arg, "__qualname__", repr(arg))
        if isinstance(owner, socket.socket):
            if not _is_local_wakeup(owner):
                seen.append(f"socket {name} ({owner.family.name})")
        elif name in WAITING_CALLS and not any(owner is lock for lock in allowed_locks):
            seen.append(f"{name} from {frame.f_code.co_filename}:{frame.f_lineno}")

    return on_call


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
    waits: list[str] = []
    # logging.Handler.handle takes the handler's own lock around emit, as for any handler.
    watch = _waits_watcher((handler.lock,), waits)
    for i in range(2_000, 20_000):
        started = time.perf_counter()
        collections = len(pauses)
        sys.setprofile(watch)
        audit.info("during", extra={"action": "CREATE", "object_id": str(i)})
        sys.setprofile(None)
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
        "waits": sorted(set(waits)), "waits_count": len(waits),
        "slowest_ms": timings[-1] * 1000, "p99_ms": timings[int(len(timings) * 0.99)] * 1000,
        "over_5ms": sum(t > 0.005 for t in timings), "slow": slow[:10],
        "gc_pauses_over_1ms": pauses[:20],
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
