"""Consumer benchmarks, each against a baseline measured in the same run on the same node:

* end-to-end throughput (stream → OpenSearch + Parquet in S3, offsets stored) against a raw
  ``opensearchpy.helpers.bulk`` of the same documents (goal ≥ 0.8x);
* log → searchable latency at 1,000 records/s, p50 and p99 (goal p99 ≤ 2 s);
* the consumer's RSS across 1,000,000 records (goal flat, ≤ 250 MB);
* Parquet bytes per record against NDJSON (goal ≤ 1/8).

The consumer runs as ``python -m audit_logging.consumer``, as in production. Every run uses
its own stream, index prefix and S3 prefix, removed afterwards.
``BENCH_CONSUMER_RSS_RECORDS`` shrinks the memory run for a quick try.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final

import psutil
from opensearchpy import helpers
from rstream import AMQPMessage, ConfirmationStatus, Producer, Properties

from audit_logging.record import build_record, format_timestamp, new_log_id, record_to_json
from audit_logging.search_index import index_for, index_pattern, install_template
from audit_logging.settings import Settings
from bench._results import Result, median, percentile
from bench._stack import (
    LOCAL_ENV,
    ConsumerProcess,
    delete_stream,
    log_time,
    opensearch,
    remove_sinks,
    s3_objects,
    stored_offset,
)

THROUGHPUT_RECORDS: Final = 50_000
THROUGHPUT_BATCH: Final = 5000
RATE: Final = 1000
LATENCY_SECONDS: Final = 30
SAMPLE_EVERY: Final = 10
RSS_RECORDS: Final = int(os.environ.get("BENCH_CONSUMER_RSS_RECORDS", "1000000"))
NAME: Final = "bench-consumer"

_ACTIONS = ["UPDATE"] * 50 + ["CREATE"] * 20 + ["VIEW"] * 15 + ["DELETE"] * 5 + ["LOGIN"] * 8
_ACTIONS += ["EXPORT", "LOGOUT"]
_TYPES = ["Customer", "Invoice", "Order", "Subscription", "Payment", "User", "Product"]
_FIRST = ["John", "Jane", "Jöhn", "Maria", "Wei", "Aiko", "Omar", "Lena", "Carlos", "Priya"]
_LAST = ["Smith", "Doe", "Müller", "García", "Tanaka", "Chen", "Okafor", "Rossi", "Novak"]
_FIELDS = ["email", "plan", "address", "status", "amount", "currency", "phone", "name"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "python-requests/2.32.3",
    "okhttp/4.12.0",
]


@dataclasses.dataclass
class _Session:
    user: int
    key: str
    ip: str
    agent: str


def _new_session(rng: random.Random) -> _Session:
    return _Session(
        user=rng.randrange(20_000),
        key=f"hmac-sha256:{rng.getrandbits(256):064x}",
        ip=f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
        f"{rng.randrange(1, 255)}",
        agent=rng.choice(_AGENTS),
    )


def realistic_record(rng: random.Random, sessions: list[_Session]) -> dict[str, Any]:
    """One record as a busy SaaS app would log it: skewed actions, many users and objects,
    each action from one of the ~1,000 sessions active at the time (a session keeps its user,
    address and browser; now and then one ends and another starts)."""
    slot = rng.randrange(len(sessions))
    if rng.random() < 0.02:
        sessions[slot] = _new_session(rng)
    session = sessions[slot]
    action = rng.choice(_ACTIONS)
    kind = rng.choice(_TYPES)
    user = session.user
    first, last = _FIRST[user % len(_FIRST)], _LAST[user % len(_LAST)]
    fields = rng.sample(_FIELDS, 2)
    changes = None
    if action == "UPDATE":
        changes = {
            f: [f"old-{rng.randrange(10**6)}", f"new-{rng.randrange(10**6)}"] for f in fields
        }
    return build_record(
        {
            "action": action,
            "user_id": f"user_{user}",
            "username": f"{first.lower()}.{last.lower()}{user % 100}@example.com",
            "object_type": kind,
            "object_id": f"{kind[:3].lower()}_{rng.randrange(5_000_000)}",
            "object_repr": f"{first} {last} ({kind} {rng.randrange(100_000)})",
            "change_message": f"{action.title()} {kind.lower()}: {', '.join(fields)}",
            "changes": changes,
            "ip_address": session.ip,
            "user_agent": session.agent,
            "session_key": session.key,
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "source": rng.choice(["billing-api", "web-app", "admin"]),
            "extra": {"tenant": f"t{user % 300}", "plan": rng.choice(["free", "pro"])},
        }
    )


def realistic_records(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    sessions = [_new_session(rng) for _ in range(1000)]
    return [realistic_record(rng, sessions) for _ in range(count)]


def many_bodies(count: int, distinct: int = 20_000) -> Iterator[bytes]:
    """``count`` record bodies, fast: ``distinct`` checked records reused with fresh log_ids
    and timestamps (the two leading keys of a record's JSON)."""
    tails = []
    for record in realistic_records(distinct, 7):
        body = record_to_json(record)
        tails.append(body[body.index(b',"user_id"') :])
    now = format_timestamp(dt.datetime.now(dt.UTC)).encode()
    for n in range(count):
        yield (
            b'{"log_id":"'
            + new_log_id().encode()
            + b'","timestamp":"'
            + now
            + b'"'
            + tails[n % distinct]
        )


# -- the stack -------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch(settings: Settings, tag: str) -> Iterator[Settings]:
    """Settings with a stream, index prefix and S3 prefix of their own, removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    own = dataclasses.replace(
        settings,
        rabbitmq_stream_name=f"bench-consumer-{tag}-{suffix}",
        opensearch_index_prefix=f"bench-consumer-{tag}-{suffix}",
        s3_prefix=f"bench-consumer-{tag}-{suffix}/",
    )
    try:
        yield own
    finally:
        remove_sinks(own, own.opensearch_index_prefix, _raw_prefix(own))
        asyncio.run(delete_stream(own))


async def _publish(settings: Settings, bodies: Iterator[bytes] | Sequence[bytes]) -> int:
    sent = 0
    confirmed = 0
    done = asyncio.Event()
    finished = False

    def on_confirm(status: ConfirmationStatus) -> None:
        nonlocal confirmed
        confirmed += 1
        if finished and confirmed == sent:
            done.set()

    async with Producer(**settings.stream_client_args()) as producer:
        await producer.create_stream(
            settings.rabbitmq_stream_name, exists_ok=True, arguments={"max-age": "1h"}
        )
        batch: list[AMQPMessage] = []
        for body in bodies:
            batch.append(
                AMQPMessage(body=body, properties=Properties(content_type="application/json"))
            )
            if len(batch) == 500:
                await producer.send_batch(
                    settings.rabbitmq_stream_name, batch, on_publish_confirm=on_confirm
                )
                sent += len(batch)
                batch = []
                # Keep the unconfirmed window bounded, as a real publisher would.
                while sent - confirmed > 20_000:
                    await asyncio.sleep(0.01)
        if batch:
            await producer.send_batch(
                settings.rabbitmq_stream_name, batch, on_publish_confirm=on_confirm
            )
            sent += len(batch)
        finished = True
        if confirmed == sent:
            done.set()
        await asyncio.wait_for(done.wait(), 300)
    return sent


def publish(settings: Settings, bodies: Iterator[bytes] | Sequence[bytes]) -> int:
    return asyncio.run(_publish(settings, bodies))


# -- throughput and Parquet size -------------------------------------------------------------


def _raw_prefix(settings: Settings) -> str:
    # Not "<prefix>-raw": its template would overlap the consumer's "<prefix>-*".
    return settings.opensearch_index_prefix.replace("bench-consumer-", "bench-raw-", 1)


def _raw_bulk(settings: Settings, records: Sequence[dict[str, Any]]) -> float:
    """docs/s of helpers.bulk of the same documents, same monthly indices and ids."""
    client = opensearch(settings)
    prefix = _raw_prefix(settings)
    try:
        install_template(client, prefix)
        client.indices.delete(index=index_pattern(prefix), ignore_unavailable=True)
        began = time.perf_counter()
        helpers.bulk(
            client,
            (
                {"_index": index_for(prefix, r["timestamp"]), "_id": r["log_id"], "_source": r}
                for r in records
            ),
            chunk_size=THROUGHPUT_BATCH,
            max_chunk_bytes=16 * 1024 * 1024,
        )
        return len(records) / (time.perf_counter() - began)
    finally:
        client.close()


def throughput(settings: Settings) -> list[Result]:
    records = realistic_records(THROUGHPUT_RECORDS, 1)
    bodies = [record_to_json(r) for r in records]
    publish(settings, bodies)
    before = _raw_bulk(settings, records)
    consumer = ConsumerProcess(
        settings, "--batch-size", str(THROUGHPUT_BATCH), "--flush-interval", "5", name=NAME
    )
    try:
        consumer.wait_for_offset(settings, len(records) - 1, 600)
    finally:
        consumer.stop()
    lines = consumer.log().splitlines()
    began = log_time(next(line for line in lines if "starting from" in line))
    ended = log_time([line for line in lines if re.search(r" batch \d+: ", line)][-1])
    ours = len(records) / (ended - began)
    after = _raw_bulk(settings, records)
    baseline = (before + after) / 2

    parquet_bytes = sum(
        item["Size"] for item in s3_objects(settings) if item["Key"].endswith(".parquet")
    )
    ndjson_bytes = sum(len(body) + 1 for body in bodies)
    per_parquet = parquet_bytes / len(records)
    per_ndjson = ndjson_bytes / len(records)
    return [
        Result(
            area="consumer",
            measure=f"end-to-end throughput, {len(records):,} records",
            ours=ours,
            baseline=baseline,
            unit="records/s",
            goal=">= 0.8x",
            met=ours >= 0.8 * baseline,
            note=(
                "ours: stream → OpenSearch + Parquet/S3 + offset stored, batches of "
                f"{THROUGHPUT_BATCH}; baseline: helpers.bulk of the same documents "
                f"(chunk {THROUGHPUT_BATCH}), mean of a run before ({before:,.0f}/s) and "
                f"after ({after:,.0f}/s); 2 cores shared with OpenSearch, RabbitMQ and moto"
            ),
        ),
        Result(
            area="consumer",
            measure="Parquet bytes per record",
            ours=per_parquet,
            baseline=per_ndjson,
            unit="bytes",
            goal="<= 0.125x",
            met=per_parquet <= per_ndjson / 8,
            note=f"baseline: the same records as NDJSON (uncompressed); zstd, files of "
            f"{THROUGHPUT_BATCH} records",
        ),
    ]


# -- latency ---------------------------------------------------------------------------------


class _SearchPoller(threading.Thread):
    """Marks when each sampled record first shows up in a search."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.client = opensearch(settings)
        self.pattern = index_pattern(settings.opensearch_index_prefix)
        self.pending: dict[str, float] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def add(self, log_id: str, logged: float) -> None:
        with self.lock:
            self.pending[log_id] = logged

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                ids = list(self.pending)
            if ids:
                try:
                    found = self.client.search(
                        index=self.pattern,
                        body={
                            "query": {"ids": {"values": ids}},
                            "size": len(ids),
                            "_source": False,
                        },
                        params={"allow_no_indices": "true", "ignore_unavailable": "true"},
                    )
                except Exception:  # noqa: BLE001 - the month's index may be being created
                    found = {"hits": {"hits": []}}
                now = time.monotonic()
                with self.lock:
                    for hit in found["hits"]["hits"]:
                        logged = self.pending.pop(hit["_id"], None)
                        if logged is not None:
                            self.latencies.append(now - logged)
            self.stopping.wait(0.05)


async def _paced(settings: Settings, poller: _SearchPoller, seconds: float) -> int:
    rng = random.Random(3)
    step = RATE // 100  # every 10 ms
    sent = 0
    async with Producer(**settings.stream_client_args()) as producer:
        await producer.create_stream(
            settings.rabbitmq_stream_name, exists_ok=True, arguments={"max-age": "1h"}
        )
        pool = realistic_records(2000, 5)
        began = time.monotonic()
        tick = 0
        while time.monotonic() - began < seconds:
            messages = []
            for _ in range(step):
                record = dict(pool[rng.randrange(len(pool))])
                record["log_id"] = new_log_id()
                record["timestamp"] = format_timestamp(dt.datetime.now(dt.UTC))
                if sent % SAMPLE_EVERY == 0:
                    poller.add(record["log_id"], time.monotonic())
                messages.append(
                    AMQPMessage(
                        body=record_to_json(record),
                        properties=Properties(content_type="application/json"),
                    )
                )
                sent += 1
            await producer.send_batch(settings.rabbitmq_stream_name, messages)
            tick += 1
            await asyncio.sleep(max(0.0, began + tick * 0.01 - time.monotonic()))
    return sent


def latency(settings: Settings) -> list[Result]:
    asyncio.run(_publish(settings, []))  # creates the stream
    # The default batch size, flush interval and index delay.
    consumer = ConsumerProcess(settings, name=NAME)
    poller = _SearchPoller(settings)
    try:
        time.sleep(3)
        # One record first, so the month's index exists before the clock runs.
        asyncio.run(_paced(settings, poller, 0.01))
        time.sleep(3)
        with poller.lock:
            poller.pending.clear()
            poller.latencies.clear()
        poller.start()
        sent = asyncio.run(_paced(settings, poller, LATENCY_SECONDS))
        deadline = time.monotonic() + 30
        while poller.pending and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.stopping.set()
        consumer.stop()
    samples = poller.latencies
    lost = len(poller.pending)
    p50, p99 = median(samples), percentile(samples, 99)
    note = (
        f"{sent:,} records over {LATENCY_SECONDS} s in bursts every 10 ms; every "
        f"{SAMPLE_EVERY}th timed from publish to first search hit (polled every 50 ms)"
        + (f"; {lost} never seen within 30 s" if lost else "")
    )
    return [
        Result(
            "consumer", "log → searchable p50 at 1,000 records/s", p50, None, "s", "-", None, note
        ),
        Result(
            "consumer",
            "log → searchable p99 at 1,000 records/s",
            p99,
            None,
            "s",
            "<= 2 s",
            p99 <= 2.0 and not lost,
            "index delay 0.1 s + bulk + 1 s refresh interval",
        ),
    ]


# -- memory ----------------------------------------------------------------------------------


def memory(settings: Settings) -> list[Result]:
    count = publish(settings, many_bodies(RSS_RECORDS))
    consumer = ConsumerProcess(settings, "--flush-interval", "5", name=NAME)  # default batch
    process = psutil.Process(consumer.proc.pid)
    samples: list[tuple[int, float]] = []  # (offset reached, RSS MiB)
    began = time.monotonic()
    try:
        while True:
            offset = stored_offset(settings, NAME)
            rss = process.memory_info().rss / 2**20
            samples.append((-1 if offset is None else offset, rss))
            if offset == count - 1:
                break
            if consumer.proc.poll() is not None or time.monotonic() - began > 3600:
                raise RuntimeError(f"consumer stopped early:\n{consumer.log()[-3000:]}")
            time.sleep(1)
    finally:
        consumer.stop()
    elapsed = time.monotonic() - began
    peak = max(rss for _, rss in samples)
    early = [rss for offset, rss in samples if offset >= count // 10]
    at_tenth = early[0] if early else samples[0][1]
    at_end = samples[-1][1]
    return [
        Result(
            "consumer",
            f"RSS peak across {count:,} records",
            peak,
            None,
            "MiB",
            "<= 250 MiB",
            peak <= 250,
            f"default batch size (1000); {count / elapsed:,.0f} records/s over {elapsed:.0f} s; "
            f"sampled every second with psutil",
        ),
        Result(
            "consumer",
            "RSS at the end against RSS at 10% of the records",
            at_end,
            at_tenth,
            "MiB",
            "<= 1.15x (flat)",
            at_end <= 1.15 * at_tenth,
            "memory must not grow with the number of records",
        ),
    ]


def run(settings: Settings) -> list[Result]:
    results: list[Result] = []
    for tag, measure in (("tp", throughput), ("lat", latency), ("rss", memory)):
        with scratch(settings, tag) as own:
            print(f"bench consumer: {measure.__name__} ...", flush=True)
            results.extend(measure(own))
    return results


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(json.dumps(dataclasses.asdict(result)))
