"""Archive command benchmarks, against a baseline measured in the same run on the same node:

* ``reindex`` of 200,000 archived records (Parquet files of 1,000 records, the consumer's
  default batch, in the local S3) into empty indices, run as ``python -m audit_logging.archive
  reindex`` from start to exit, against ``opensearchpy.helpers.bulk`` of the same documents
  already in memory (``create``, chunks of 5,000): the floor of what writing them costs;
* ``verify`` of the same range (both tiers read, day by day), in archived records per second;
* ``verify`` of one day of 1,000,000 records (files of 1,000), in records per second.

Rounds alternate (bulk, reindex, bulk, reindex, ...); each starts from empty indices. Everything
is written under the run's own index and S3 prefixes and removed afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

from opensearchpy import OpenSearch, helpers

from audit_logging._uuid7 import uuid7_at
from audit_logging.archive import layout, parquet
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record import format_timestamp
from audit_logging.search_index import index_for, index_pattern, install_template
from audit_logging.settings import Settings, read_env_file
from bench._results import HERE, Result, median
from bench._stack import LOCAL_ENV, opensearch, remove_sinks
from bench.bench_consumer import realistic_records

RECORDS: Final = int(os.environ.get("BENCH_ARCHIVE_RECORDS", "200000"))
PER_FILE: Final = 1000
DAYS: Final = 8
ROUNDS: Final = 3
GOAL: Final = 0.7
STREAM: Final = "audit_logs_stream"
DAY_RECORDS: Final = int(os.environ.get("BENCH_ARCHIVE_DAY_RECORDS", "1000000"))
DAY_CHUNK: Final = 50_000  # records made, archived and indexed at a time (memory)


def _records(count: int) -> list[dict[str, Any]]:
    """Realistic records spread over the last ``DAYS`` days (kept by any index retention)."""
    rng = random.Random(20261201)
    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(days=DAYS)
    step = (end - start) / count
    records = realistic_records(count, 11)
    for i, record in enumerate(records):
        moment = start + step * i
        record["timestamp"] = format_timestamp(moment)
        record["log_id"] = uuid7_at(moment, rng.getrandbits)
    return records


def _archive(
    settings: Settings, records: Sequence[dict[str, Any]], first_offset: int = 0,
) -> None:
    """Write ``records`` as the consumer does: a file per batch and day, named by offsets."""
    s3 = make_s3_client(settings)
    offset = first_offset
    for start in range(0, len(records), PER_FILE):
        batch = records[start : start + PER_FILE]
        by_day: dict[str, list[dict[str, Any]]] = {}
        for record in batch:
            by_day.setdefault(layout.day_of(record), []).append(record)
        for day, rows in by_day.items():
            first = offset + batch.index(rows[0])
            last = offset + batch.index(rows[-1])
            key = layout.archive_key(settings.s3_prefix, STREAM, day, first, last)
            body = parquet.parquet_bytes(parquet.records_table(rows), {
                "audit_logging.stream": STREAM,
                "audit_logging.first_offset": str(first),
                "audit_logging.last_offset": str(last),
            })
            s3.put_object(Bucket=settings.require("s3_bucket"), Key=key, Body=body)
        offset += len(batch)


def _verify_one_day(settings: Settings) -> Result:
    """``verify`` of yesterday holding ``DAY_RECORDS`` records in both tiers, made, archived
    and indexed ``DAY_CHUNK`` at a time."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-verify-{tag}"
    settings = dataclasses.replace(settings, s3_prefix=f"bench-verify-{tag}/",
                                   opensearch_index_prefix=prefix)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    step = dt.timedelta(days=1) / DAY_RECORDS
    rng = random.Random(20261202)
    client = opensearch(settings)
    try:
        install_template(client, prefix)
        for start in range(0, DAY_RECORDS, DAY_CHUNK):
            records = realistic_records(min(DAY_CHUNK, DAY_RECORDS - start), start)
            for i, record in enumerate(records):
                moment = day + step * (start + i)
                record["timestamp"] = format_timestamp(moment)
                record["log_id"] = uuid7_at(moment, rng.getrandbits)
            _archive(settings, records, first_offset=start)
            actions = ({"_op_type": "create", "_index": index_for(prefix, r["timestamp"]),
                        "_id": r["log_id"], "_source": r} for r in records)
            ok, errors = helpers.bulk(client, actions, chunk_size=5000,
                                      max_chunk_bytes=8 * 1024 * 1024)
            assert ok == len(records), errors
            assert not errors, errors
        client.indices.refresh(index=index_pattern(prefix))
        assert _count(client, prefix) == DAY_RECORDS
        name = day.date().isoformat()
        seconds, _ = _command(settings, prefix, "verify", "--since", name, "--until", name)
    finally:
        client.close()
        remove_sinks(settings)
    return Result(
        "archive", f"verify, one day of {DAY_RECORDS:,} records", DAY_RECORDS / seconds, None,
        "records/s", "-", None,
        f"python -m audit_logging.archive verify of one UTC day from start to exit, files of "
        f"{PER_FILE:,} ({seconds:.1f} s): the day's log_ids in both tiers compared, offsets "
        "checked",
    )


def _empty(client: OpenSearch, prefix: str) -> None:
    client.indices.delete(index=index_pattern(prefix), ignore_unavailable=True)


def _bulk(client: OpenSearch, prefix: str, records: Sequence[dict[str, Any]]) -> float:
    install_template(client, prefix)
    actions = (
        {"_op_type": "create", "_index": index_for(prefix, r["timestamp"]), "_id": r["log_id"],
         "_source": r}
        for r in records
    )
    started = time.perf_counter()
    ok, errors = helpers.bulk(client, actions, chunk_size=5000, max_chunk_bytes=8 * 1024 * 1024)
    client.indices.refresh(index=index_pattern(prefix))
    seconds = time.perf_counter() - started
    assert ok == len(records), (ok, errors)
    assert not errors, errors
    return seconds


def _command(settings: Settings, prefix: str, *args: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUDIT_LOG_", "AWS_", "OPENSEARCH_"))}
    env.update(read_env_file(LOCAL_ENV))
    env["AUDIT_LOG_S3_PREFIX"] = settings.s3_prefix
    env["OPENSEARCH_INDEX_PREFIX"] = prefix
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "audit_logging.archive", *args], env=env,
                          cwd=HERE.parent, capture_output=True, text=True, timeout=3600,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done.stdout


def _count(client: OpenSearch, prefix: str) -> int:
    return int(client.count(index=index_pattern(prefix))["count"])


def run(settings: Settings) -> list[Result]:
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-archive-{tag}"
    base_prefix = f"bench-archive-bulk-{tag}"
    settings = dataclasses.replace(settings, s3_prefix=f"bench-archive-{tag}/",
                                   opensearch_index_prefix=prefix)
    records = _records(RECORDS)
    first = records[0]["timestamp"][:10]
    last = records[-1]["timestamp"][:10]
    client = opensearch(settings)
    bulk_runs: list[float] = []
    reindex_runs: list[float] = []
    try:
        _archive(settings, records)
        with tempfile.TemporaryDirectory() as state:
            for _ in range(ROUNDS):
                _empty(client, base_prefix)
                bulk_runs.append(_bulk(client, base_prefix, records))
                _empty(client, prefix)
                seconds, _ = _command(settings, prefix, "reindex", "--since", first,
                                      "--until", last, "--state-dir", state)
                assert _count(client, prefix) == RECORDS
                reindex_runs.append(seconds)
            present, _ = _command(settings, prefix, "reindex", "--since", first, "--until", last,
                                  "--state-dir", state)
        verify, _ = _command(settings, prefix, "verify", "--since", first, "--until", last)
    finally:
        client.indices.delete(index=index_pattern(base_prefix), ignore_unavailable=True)
        client.indices.delete_index_template(name=base_prefix, ignore=[404])
        client.close()
        remove_sinks(settings)
    ours = RECORDS / median(reindex_runs)
    base = RECORDS / median(bulk_runs)
    ratio = ours / base
    return [
        Result(
            "archive", f"reindex throughput, {RECORDS:,} archived records", ours, base,
            "records/s", f">= {GOAL}x", ratio >= GOAL,
            f"ours: python -m audit_logging.archive reindex from start to exit (S3 → Parquet → "
            f"bulk create, files of {PER_FILE:,}); baseline: helpers.bulk of the same documents "
            f"from memory (create, chunks of 5,000); median of {ROUNDS} alternated rounds; "
            f"rounds ours {'/'.join(f'{RECORDS / s:,.0f}' for s in reindex_runs)}, bulk "
            f"{'/'.join(f'{RECORDS / s:,.0f}' for s in bulk_runs)}; 2 cores shared with "
            "OpenSearch, moto and whatever else runs there",
        ),
        Result(
            "archive", f"reindex again, {RECORDS:,} records all already there", RECORDS / present,
            None, "records/s", "-", None,
            "a rerun that finds every record in the index (write-once: counted, not rewritten)",
        ),
        Result(
            "archive", f"verify, {RECORDS:,} records over {DAYS} days", RECORDS / verify, None,
            "records/s", "-", None,
            "python -m audit_logging.archive verify from start to exit: log_ids of both tiers "
            "read and compared day by day, offsets checked",
        ),
        _verify_one_day(settings),  # under prefixes of its own
    ]


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(result)
