"""``python -m bench.compare_commits [OLD [NEW]]``: the capture path of two commits, same run.

A refactor must not make capture dearer. This checks out OLD (default: the commit before the
restructure) into a temporary worktree and measures, in child processes that alternate between
the two trees round after round against the same broker:

- the per-call cost of ``logger.info(...)`` on an :class:`AuditHandler` (median wall time of
  a call, in the app's thread);
- the CPU the whole process spends per record (the app's calls plus the publisher thread's
  work, which competes with the app for the GIL and the cores);
- the publisher's throughput: records/s from the first call until ``flush()`` reports every
  record confirmed by the broker.

It prints NEW/OLD ratios (medians over the rounds) and exits 1 when NEW is more than 10 %
worse on any of them. NEW defaults to the working tree.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The last commit before the restructure (one schema, the publisher and consumer in parts).
BEFORE_RESTRUCTURE = "16d600e"
ROUNDS = 5
CALLS = 20_000
TOLERANCE = 1.10

# Runs in the child, against whichever tree PYTHONPATH names; only public API that both have.
_CHILD = r"""
import gc, json, logging, os, resource, sys, time, uuid
from pathlib import Path
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings

calls = int(sys.argv[1])
settings = Settings.load(
    env_file=Path(sys.argv[2]),
    rabbitmq_stream_name=sys.argv[3],
    spool_dir=Path(sys.argv[4]),
    # Room for every call: measure the broker path, not the spool (bench_capture does that).
    queue_size=calls * 2,
)
handler = AuditHandler(settings=settings)
logger = logging.getLogger("bench.compare." + uuid.uuid4().hex)
logger.propagate = False
logger.setLevel(logging.INFO)
logger.addHandler(handler)
extras = [
    {"action": "UPDATE", "object_type": "Invoice", "object_id": str(i), "user_id": "u-7",
     "changes": {"amount": [i, i + 1]}}
    for i in range(calls)
]
logger.info("warm-up", extra=extras[0])
if handler.flush(60):
    raise SystemExit("warm-up not confirmed")
gc.collect()
info = logger.info
per_call = []
cpu0 = time.process_time()
began = time.perf_counter()
for extra in extras:
    t0 = time.perf_counter_ns()
    info("invoice updated", extra=extra)
    per_call.append(time.perf_counter_ns() - t0)
left = handler.flush(120)
elapsed = time.perf_counter() - began
cpu = time.process_time() - cpu0
spooled = handler.stats().get("spooled", 0)
handler.close(30)
if left:
    raise SystemExit(f"{left} records unconfirmed")


async def _drop_stream() -> None:
    from rstream import Producer
    async with Producer(
        host=settings.rabbitmq_stream_host, port=settings.rabbitmq_stream_port,
        vhost=settings.rabbitmq_stream_vhost, username=settings.rabbitmq_stream_user,
        password=settings.rabbitmq_stream_password.get(),
    ) as producer:
        await producer.delete_stream(settings.rabbitmq_stream_name)


import asyncio
asyncio.run(_drop_stream())
per_call.sort()
print(json.dumps({
    "per_call_ns": per_call[len(per_call) // 2],
    "cpu_us_per_record": cpu / calls * 1e6,
    "records_per_s": calls / elapsed,
    "spooled": spooled,
}))
"""


def _measure(tree: Path, stream: str, spool: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(CALLS), str(ROOT / "devstack" / "local.env"), stream,
         str(spool)],
        cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"compare_commits: the run in {tree} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["spooled"]:
        raise SystemExit(f"compare_commits: {tree} spooled records; the broker was not keeping up")
    return result


def main(argv: list[str]) -> int:
    old = argv[0] if argv else BEFORE_RESTRUCTURE
    new = argv[1] if len(argv) > 1 else None
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        trees = {}
        for label, rev in (("old", old), ("new", new)):
            if rev is None:
                trees[label] = ROOT
                continue
            tree = Path(tmp) / label
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(tree), rev], check=True)
            trees[label] = tree
        try:
            rows: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for n in range(ROUNDS):
                # Alternate which goes first so a drifting machine favours neither.
                order = ("old", "new") if n % 2 == 0 else ("new", "old")
                for label in order:
                    stream = f"bench-compare-{label}-{os.getpid()}-{n}"
                    spool = Path(tmp) / f"spool-{label}-{n}"
                    rows[label].append(_measure(trees[label], stream, spool))
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(tree)], check=False)
    worse = False
    print(f"compare_commits: {CALLS} calls x {ROUNDS} rounds, old {old}, new {new or 'worktree'}")
    for key, better in (("per_call_ns", "lower"), ("cpu_us_per_record", "lower"),
                        ("records_per_s", "higher")):
        o = statistics.median(r[key] for r in rows["old"])
        w = statistics.median(r[key] for r in rows["new"])
        ratio = w / o
        bad = ratio > TOLERANCE if better == "lower" else ratio < 1 / TOLERANCE
        worse |= bad
        print(f"  {key:<18} old {o:10.1f}  new {w:10.1f}  new/old {ratio:.3f}"
              f" ({better} is better){'  WORSE' if bad else ''}")
    return 1 if worse else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
