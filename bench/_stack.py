"""The local stack as the benchmarks use it: the library's own clients, the consumer as a
process, and the removal of what a run wrote.

Stream connections take ``settings.stream_client_args()``, OpenSearch and S3 the clients the
consumer itself uses (``make_client``, ``make_s3_client``), so a benchmark talks to the
stack exactly as the library does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg
import pyarrow.parquet as pq
from rstream import Consumer, Producer
from rstream.exceptions import OffsetNotFound, StreamNotAvailable

from audit_logging.consumer.s3 import make_s3_client
from audit_logging.search_index import index_pattern, make_client
from audit_logging.settings import Settings, read_env_file
from bench._results import HERE

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef, ObjectTypeDef
    from opensearchpy import OpenSearch

DEVSTACK: Final = HERE.parent / "devstack"
LOCAL_ENV: Final = DEVSTACK / "local.env"
POSTGRES_DSN: Final = os.environ.get(
    "BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5433/postgres"
)
_LOG_TIME: Final = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def opensearch(settings: Settings) -> OpenSearch:
    # A generous timeout: the benchmarks keep OpenSearch busy on purpose.
    return make_client(settings, timeout=120)


def s3_objects(settings: Settings) -> Iterator[ObjectTypeDef]:
    """Every object under ``settings.s3_prefix``."""
    pages = make_s3_client(settings).get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=settings.require("s3_bucket"), Prefix=settings.s3_prefix):
        yield from page.get("Contents", [])


def archived_log_ids(settings: Settings) -> list[str]:
    """The log_id of every row of the Parquet files under the S3 prefix, repeats included."""
    s3 = make_s3_client(settings)
    ids: list[str] = []
    for item in s3_objects(settings):
        if item["Key"].endswith(".parquet"):
            body = s3.get_object(Bucket=settings.require("s3_bucket"), Key=item["Key"])["Body"]
            table = pq.read_table(io.BytesIO(body.read()), columns=["log_id"])
            ids.extend(str(value) for value in table.column("log_id").to_pylist())
    return ids


def remove_sinks(settings: Settings, *index_prefixes: str) -> None:
    """Delete the indices and index templates of ``index_prefixes`` (by default the
    settings' own) and every object under the S3 prefix."""
    client = opensearch(settings)
    try:
        for prefix in index_prefixes or (settings.opensearch_index_prefix,):
            client.indices.delete(index=index_pattern(prefix), ignore_unavailable=True)
            client.indices.delete_index_template(name=prefix, ignore=[404])
    finally:
        client.close()
    s3 = make_s3_client(settings)
    keys: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in s3_objects(settings)]
    for start in range(0, len(keys), 1000):  # the most one DeleteObjects call takes
        s3.delete_objects(
            Bucket=settings.require("s3_bucket"), Delete={"Objects": keys[start : start + 1000]}
        )


async def delete_stream(settings: Settings) -> None:
    """Delete ``settings.rabbitmq_stream_name``: a stream, or a super stream with its
    partitions when ``settings.stream_partitions`` > 1."""
    name = settings.rabbitmq_stream_name
    producer = Producer(**settings.stream_client_args())
    try:
        await producer.start()
        if settings.stream_partitions == 1:
            await producer.delete_stream(name, missing_ok=True)
            return
        # A super stream goes with its partitions through the low-level client only.
        client = await producer.default_client
        if await client.partitions(name):
            await client.delete_super_stream(name)
    finally:
        await producer.close()


async def stored_offsets(
    settings: Settings, streams: Sequence[str], name: str
) -> dict[str, int | None]:
    """The offset stored for consumer ``name`` on each stream (None: nothing stored yet)."""
    found: dict[str, int | None] = {}
    async with Consumer(**settings.stream_client_args()) as consumer:
        for stream in streams:
            try:
                found[stream] = await consumer.query_offset(stream, name)
            except OffsetNotFound:
                found[stream] = None
    return found


def stored_offset(settings: Settings, name: str) -> int | None:
    """The offset stored for ``name`` on the settings' stream. Other benchmarks restart the
    shared broker now and then: this rides that out."""
    stream = settings.rabbitmq_stream_name
    for attempt in range(120):
        try:
            return asyncio.run(stored_offsets(settings, [stream], name))[stream]
        except (OSError, StreamNotAvailable):
            if attempt == 119:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def ensure_postgres() -> None:
    """devstack's PostgreSQL (``devstack/postgres.sh``), started if it does not answer."""
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.OperationalError:
        subprocess.run(["bash", str(DEVSTACK / "postgres.sh"), "start"], check=True)


def stack_environ(settings: Settings) -> dict[str, str]:
    """The environment of a process of the library's run on the local stack: this one's,
    less its own RabbitMQ, OpenSearch, AWS and AUDIT_LOG_ settings, with devstack's and the
    settings' stream, index prefix and S3 prefix instead."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RABBITMQ_", "OPENSEARCH_", "AUDIT_LOG_", "AWS_"))
    }
    env.update(read_env_file(LOCAL_ENV))
    env.update(
        {
            "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
            "AUDIT_LOG_STREAM_PARTITIONS": str(settings.stream_partitions),
            "OPENSEARCH_INDEX_PREFIX": settings.opensearch_index_prefix,
            "AUDIT_LOG_S3_PREFIX": settings.s3_prefix,
        }
    )
    return env


def log_time(line: str) -> float:
    """The wall-clock time a consumer log line was written."""
    match = _LOG_TIME.match(line)
    assert match, line
    return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


class ConsumerProcess:
    """``python -m audit_logging.consumer --consumer-name NAME *args`` on the local stack,
    reading the settings' stream (or super stream) into their index prefix and S3 prefix,
    its log in a file of its own."""

    def __init__(
        self,
        settings: Settings,
        *args: str,
        name: str,
        new_session: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: more variables (e.g. PYTHONPATH naming another tree to run)."""
        self.name = name
        env = stack_environ(settings) | (env or {})
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.log_path = self.workdir / "consumer.log"
        command = [sys.executable, "-m", "audit_logging.consumer", "--consumer-name", name]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*command, *args],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def wait_for_offset(self, settings: Settings, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while stored_offset(settings, self.name) != offset:
            if not self.running() or time.monotonic() > deadline:
                raise RuntimeError(f"consumer did not reach offset {offset}:\n{self.log()[-3000:]}")
            time.sleep(0.2)
