"""What the archive's digests cost the consumer: end-to-end throughput and CPU per record of
this tree's consumer against the same consumer without digests (the commit before they were
written, checked out into a temporary worktree), in alternating rounds over the same records
(goal >= 0.95x).

This tree runs twice per round: with the default ``AUDIT_LOG_DIGEST_INTERVAL`` (1 h: the
chain's first digest after the first batch, then one at shutdown) and with 1 s (a digest
after nearly every batch, the worst case), both signing with an Ed25519 key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import psutil

from audit_logging.archive.signing import new_private_pem
from audit_logging.record import record_to_json
from audit_logging.settings import Settings
from bench._results import Result
from bench._stack import LOCAL_ENV, ConsumerProcess, log_time, remove_sinks
from bench.bench_consumer import publish, realistic_records, scratch

ROOT: Final = Path(__file__).resolve().parents[1]
# The last commit whose consumer writes no digest.
BEFORE_DIGESTS: Final = "ca0a294"
RECORDS: Final = 50_000
BATCH: Final = 5000
ROUNDS: Final = 3


@contextlib.contextmanager
def _old_tree() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="bench-digests-"))
    tree = where / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), BEFORE_DIGESTS],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(where, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class _Run:
    records_per_s: float
    cpu_us_per_record: float


def _consume(settings: Settings, count: int, env: dict[str, str]) -> _Run:
    """One consumer name reading the whole stream into sinks of its own."""
    tag = uuid.uuid4().hex[:8]
    own = dataclasses.replace(
        settings,
        opensearch_index_prefix=f"{settings.opensearch_index_prefix}-{tag}",
        s3_prefix=f"{settings.s3_prefix}{tag}/",
    )
    name = f"bench-digests-{tag}"
    consumer = ConsumerProcess(
        own, "--batch-size", str(BATCH), "--flush-interval", "5", name=name, env=env
    )
    try:
        consumer.wait_for_offset(own, count - 1, 600)
        cpu = psutil.Process(consumer.proc.pid).cpu_times()
    finally:
        consumer.stop()
    lines = consumer.log().splitlines()
    began = log_time(next(line for line in lines if "starting from" in line))
    ended = log_time([line for line in lines if re.search(r" batch \d+: ", line)][-1])
    remove_sinks(own, own.opensearch_index_prefix)
    return _Run(count / (ended - began), (cpu.user + cpu.system) * 1e6 / count)


def run(settings: Settings) -> list[Result]:
    runs: dict[str, list[_Run]] = {"none": [], "1h": [], "1s": []}
    with scratch(settings, "dig") as own, _old_tree() as old, tempfile.TemporaryDirectory() as keys:
        key = Path(keys) / "signing.pem"
        key.write_bytes(new_private_pem())
        records = realistic_records(RECORDS, 3)
        publish(own, [record_to_json(r) for r in records])
        variants = {
            "none": {"PYTHONPATH": str(old)},
            "1h": {"AUDIT_LOG_SIGNING_KEY_FILE": str(key)},
            "1s": {"AUDIT_LOG_SIGNING_KEY_FILE": str(key), "AUDIT_LOG_DIGEST_INTERVAL": "1"},
        }
        for round_ in range(ROUNDS):
            print(f"bench digests: round {round_ + 1} of {ROUNDS} ...", flush=True)
            for variant, env in variants.items():
                runs[variant].append(_consume(own, RECORDS, env))
    base = statistics.median(r.records_per_s for r in runs["none"])
    base_cpu = statistics.median(r.cpu_us_per_record for r in runs["none"])
    results = []
    for variant, label in (("1h", "default interval (1 h)"), ("1s", "a digest every second")):
        ours = statistics.median(r.records_per_s for r in runs[variant])
        cpu = statistics.median(r.cpu_us_per_record for r in runs[variant])
        results += [
            Result(
                area="digests",
                measure=f"consumer throughput with signed digests, {label}",
                ours=ours,
                baseline=base,
                unit="records/s",
                goal=">= 0.95x",
                met=ours >= 0.95 * base,
                note=f"baseline: the consumer of {BEFORE_DIGESTS} (no digests) over the same "
                f"{RECORDS:,} records; medians of {ROUNDS} alternating rounds, batches of {BATCH}",
            ),
            Result(
                area="digests",
                measure=f"consumer CPU per record with signed digests, {label}",
                ours=cpu,
                baseline=base_cpu,
                unit="µs/record",
                goal="<= 1.05x",
                met=cpu <= 1.05 * base_cpu,
                note="the consumer process's user + system CPU until the last offset is "
                "stored, divided by the records",
            ),
        ]
    return results


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(json.dumps(dataclasses.asdict(result)))
