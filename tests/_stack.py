"""Clients for the real local stack, for tests and their fixtures."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_logging.settings import Settings

if TYPE_CHECKING:
    from rstream import ConfirmationStatus


def broker_version() -> tuple[int, ...]:
    """The local RabbitMQ node's version, e.g. (4, 3, 6)."""
    script = Path(__file__).resolve().parents[1] / "devstack" / "rabbitmq.sh"
    done = subprocess.run(["bash", str(script), "ctl", "-q", "eval", "rabbit_misc:version()."],
                          capture_output=True, text=True, timeout=120, check=True)
    return tuple(int(part) for part in done.stdout.strip().strip('"').split("."))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def delete_stream(settings: Settings, name: str) -> None:
    from rstream import Producer

    producer = Producer(**settings.stream_client_args())
    try:
        await producer.delete_stream(name, missing_ok=True)
    finally:
        await producer.close()


async def delete_super_stream(settings: Settings) -> None:
    """Delete the super stream ``settings.rabbitmq_stream_name`` and its partitions, if any."""
    from rstream import Producer

    producer = Producer(**settings.stream_client_args())
    try:
        await producer.start()
        client = await producer.default_client
        if await client.partitions(settings.rabbitmq_stream_name):
            await client.delete_super_stream(settings.rabbitmq_stream_name)
    finally:
        await producer.close()


class Confirms:
    """An ``on_publish_confirm`` callback that keeps every status the broker sends back;
    ``wait`` returns once ``expected`` of them arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.statuses: list[ConfirmationStatus] = []
        self._all_in = asyncio.Event()

    def __call__(self, status: ConfirmationStatus) -> None:
        self.statuses.append(status)
        if len(self.statuses) == self.expected:
            self._all_in.set()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self._all_in.wait(), timeout)


def opensearch_client(settings: Settings) -> Any:
    from audit_logging.search_index import make_client

    return make_client(settings, timeout=60)


def s3_client(settings: Settings) -> Any:
    from audit_logging.consumer.s3 import make_s3_client

    return make_s3_client(settings)


def delete_indices(settings: Settings, prefix: str) -> None:
    """Delete the indices and the index template of ``prefix``."""
    client = opensearch_client(settings)
    try:
        client.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)
        client.indices.delete_index_template(name=prefix, ignore=[404])
    finally:
        client.close()


def delete_objects(settings: Settings, prefix: str) -> None:
    """Delete every S3 object under ``prefix``."""
    s3 = s3_client(settings)
    bucket = settings.require("s3_bucket")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


async def read_stream(
    settings: Settings, stream: str, *, at_least: int, timeout: float = 60.0,
    quiet_after: float = 1.0,
) -> list[tuple[int, bytes]]:
    """(offset, body) of the messages of ``stream`` from its start: waits for ``at_least``
    of them, then for ``quiet_after`` seconds more, so extra (duplicate) messages show."""
    import time

    from rstream import (
        AMQPMessage,
        Consumer,
        ConsumerOffsetSpecification,
        MessageContext,
        OffsetType,
        amqp_decoder,
    )

    got: list[tuple[int, bytes]] = []
    last = time.monotonic()

    async def on_message(message: AMQPMessage, context: MessageContext) -> None:
        nonlocal last
        got.append((context.offset, bytes(message.body)))
        last = time.monotonic()

    consumer = Consumer(**settings.stream_client_args())
    await consumer.start()
    try:
        await consumer.subscribe(
            stream, on_message, decoder=amqp_decoder, initial_credit=100,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(got) >= at_least and time.monotonic() - last >= quiet_after:
                break
            await asyncio.sleep(0.05)
    finally:
        await consumer.close()
    return got


def stream_records(settings: Settings, stream: str, at_least: int,
                   timeout: float = 60.0) -> list[dict[str, Any]]:
    """The records (decoded JSON bodies) in ``stream``, in stream order."""
    import json

    return [json.loads(body) for _, body in
            asyncio.run(read_stream(settings, stream, at_least=at_least, timeout=timeout))]
