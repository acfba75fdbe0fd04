"""``verify --integrity`` throughput in MB/s of archive, against reading the same objects from
S3 without hashing them, measured in the same run on the same node (goal >= 0.8x).

The archive: ``RECORDS`` realistic records in Parquet files of ``PER_FILE`` (as the consumer
writes them, one file per batch), listed by signed, chained digests of ``FILES_PER_DIGEST``
files each, the public key published and the digest reference stored in RabbitMQ, under a
prefix and stream of the run's own (removed afterwards).

Ours: ``python -m audit_logging.archive verify --integrity --public-key FILE`` from start to
exit (process start, RabbitMQ, the listing, every digest read and checked, every object read
and hashed). Baseline: the same objects read whole through the same pyarrow S3 filesystem,
as many at once as verify reads, in this process, nothing else done. Rounds alternate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from rstream import Consumer, Producer

from audit_logging.archive import layout, parquet
from audit_logging.archive.digest_format import (
    Digest,
    ObjectEntry,
    SignedDigest,
    digest_key,
    digest_reference,
    public_key_key,
)
from audit_logging.archive.integrity_bucket import CHUNK, READERS
from audit_logging.archive.signing import load_signer, new_private_pem, public_pem
from audit_logging.archive.store import s3_filesystem
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record import format_timestamp
from audit_logging.settings import Settings, read_env_file
from audit_logging.stream_offsets import DEFAULT_CONSUMER_NAME
from bench._results import HERE, Result, median
from bench._stack import LOCAL_ENV, delete_stream, remove_sinks
from bench.bench_consumer import realistic_records

RECORDS: Final = int(os.environ.get("BENCH_INTEGRITY_RECORDS", "1000000"))
PER_FILE: Final = 1000
FILES_PER_DIGEST: Final = 50
ROUNDS: Final = 3
GOAL: Final = 0.8
AREA: Final = "archive_integrity"
_CHUNK_RECORDS: Final = 50_000  # records made at a time (memory)


def _put(settings: Settings, key: str, body: bytes) -> None:
    make_s3_client(settings).put_object(Bucket=settings.require("s3_bucket"), Key=key, Body=body)


def _objects(settings: Settings, pool: concurrent.futures.Executor) -> list[ObjectEntry]:
    """``RECORDS`` records in files of ``PER_FILE``, written side by side."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    stream = settings.rabbitmq_stream_name

    def one(first: int, rows: list[dict[str, Any]]) -> ObjectEntry:
        key = layout.archive_key(settings.s3_prefix, stream, layout.day_of(rows[0]), first,
                                 first + len(rows) - 1)
        body = parquet.parquet_bytes(parquet.records_table(rows))
        _put(settings, key, body)
        return ObjectEntry(key, "archive", hashlib.sha256(body).hexdigest(), len(body),
                           len(rows), first, first + len(rows) - 1, rows[0]["timestamp"],
                           rows[-1]["timestamp"])

    entries: list[ObjectEntry] = []
    for chunk in range(0, RECORDS, _CHUNK_RECORDS):
        records = realistic_records(min(_CHUNK_RECORDS, RECORDS - chunk), chunk)
        for i, record in enumerate(records):
            record["timestamp"] = format_timestamp(start + dt.timedelta(milliseconds=chunk + i))
        files = [(chunk + at, records[at : at + PER_FILE])
                 for at in range(0, len(records), PER_FILE)]
        entries += pool.map(lambda item: one(*item), files)
    return entries


def _digests(settings: Settings, entries: Sequence[ObjectEntry], key_file: Path) -> int:
    """Signed, chained digests over ``entries``; the last offset they cover."""
    signer = load_signer(key_file)
    _put(settings, public_key_key(settings.s3_prefix, signer.key_id), public_pem(signer.public))
    previous: tuple[str, SignedDigest] | None = None
    now = dt.datetime.now(dt.UTC)
    for sequence, at in enumerate(range(0, len(entries), FILES_PER_DIGEST)):
        listed = tuple(entries[at : at + FILES_PER_DIGEST])
        first, last = listed[0].first_offset, listed[-1].last_offset
        digest = Digest(settings.rabbitmq_stream_name, sequence, first, last,
                        format_timestamp(now), format_timestamp(now), listed,
                        None if previous is None else previous[1].link(previous[0]),
                        signer.key_id, "bench")
        signed = SignedDigest(digest, signer.sign(digest.signed_bytes()))
        key = digest_key(settings.s3_prefix, settings.rabbitmq_stream_name, now, first, last)
        _put(settings, key, signed.object_bytes())
        previous = (key, signed)
    assert previous is not None
    return previous[1].digest.last_offset


async def _store_reference(settings: Settings, offset: int) -> None:
    stream = settings.rabbitmq_stream_name
    async with Producer(**settings.stream_client_args()) as producer:
        await producer.create_stream(stream, exists_ok=True)
    async with Consumer(**settings.stream_client_args()) as consumer:
        await consumer.store_offset(stream, digest_reference(DEFAULT_CONSUMER_NAME), offset)


def _read_all(settings: Settings, keys: Sequence[str]) -> tuple[float, int]:
    """The baseline: every object read whole, ``READERS`` at a time, nothing else done."""
    fs = s3_filesystem(settings)
    bucket = settings.require("s3_bucket")

    def one(key: str) -> int:
        size = 0
        with fs.open_input_stream(f"{bucket}/{key}") as stream:
            while chunk := stream.read_buffer(CHUNK).size:
                size += chunk
        return size

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(READERS) as pool:
        total = sum(pool.map(one, keys))
    return time.perf_counter() - started, total


def _verify(settings: Settings, public: Path) -> float:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUDIT_LOG_", "AWS_", "OPENSEARCH_", "RABBITMQ_"))}
    env.update(read_env_file(LOCAL_ENV))
    env["AUDIT_LOG_S3_PREFIX"] = settings.s3_prefix
    env["RABBITMQ_STREAM_NAME"] = settings.rabbitmq_stream_name
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging.archive", "verify", "--integrity", "--public-key",
         str(public)], env=env, cwd=HERE.parent, capture_output=True, text=True, timeout=3600,
        check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"verify --integrity exited {done.returncode}: "
                           f"{done.stdout[-2000:]} {done.stderr[-2000:]}")
    return seconds


def run(settings: Settings) -> list[Result]:
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(settings, s3_prefix=f"bench-integrity-{tag}/",
                                   rabbitmq_stream_name=f"bench-integrity-{tag}")
    ours: list[float] = []
    base: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as keys:
            key_file = Path(keys) / "signing.pem"
            key_file.write_bytes(new_private_pem())
            public = Path(keys) / "public.pem"
            public.write_bytes(public_pem(load_signer(key_file).public))
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                entries = _objects(settings, pool)
            last = _digests(settings, entries, key_file)
            asyncio.run(_store_reference(settings, last))
            size = sum(e.size for e in entries)
            for _ in range(ROUNDS):
                seconds, read = _read_all(settings, [e.key for e in entries])
                assert read == size, (read, size)
                base.append(size / seconds / 1e6)
                ours.append(size / _verify(settings, public) / 1e6)
    finally:
        remove_sinks(settings)
        asyncio.run(delete_stream(settings))
    ratio = median(ours) / median(base)
    return [Result(
        AREA, f"verify --integrity, {len(entries):,} objects ({size / 1e6:,.0f} MB, "
        f"{RECORDS:,} records)", median(ours), median(base), "MB/s", f">= {GOAL}x",
        ratio >= GOAL,
        f"ours: python -m audit_logging.archive verify --integrity --public-key from start to "
        f"exit ({len(entries) // FILES_PER_DIGEST:,} signed digests of {FILES_PER_DIGEST} files"
        f" of {PER_FILE:,} records; every object read and SHA-256 hashed, every signature "
        f"checked, the reference read from RabbitMQ); baseline: the same objects read whole "
        f"through pyarrow's S3 filesystem, {READERS} at a time, in process, no hashing; median "
        f"of {ROUNDS} alternated rounds: ours {'/'.join(f'{v:,.1f}' for v in ours)}, baseline "
        f"{'/'.join(f'{v:,.1f}' for v in base)} MB/s; 2 cores shared with moto",
    )]


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(result)
