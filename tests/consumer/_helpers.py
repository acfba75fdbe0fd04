"""Helpers for the consumer tests: publish records, wait for offsets, run the consumer (what
the sinks hold is read back by ``_sinks``).

Records are published with rstream directly, as the capture side does (an AMQP 1.0 message
whose body is ``record_to_json(record)``, content type application/json).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rstream import AMQPMessage, ConfirmationStatus, Consumer, Producer, Properties
from rstream.exceptions import OffsetNotFound, StreamNotAvailable

from audit_logging.record import build_record, record_to_json
from audit_logging.settings import Settings

T = TypeVar("T")
NAME = "audit-logging-consumer"  # the consumer's name when none is given
STREAM_ARGUMENTS = {"max-age": "2h"}
ACTIONS = ("CREATE", "UPDATE", "DELETE", "LOGIN", "LOGOUT", "VIEW", "EXPORT")


def connect_args(settings: Settings) -> dict[str, Any]:
    return settings.stream_client_args()


def make_records(count: int, **fields: Any) -> list[dict[str, Any]]:
    """Realistic, checked records (time-ordered log_ids, timestamps of now)."""
    records = []
    for i in range(count):
        records.append(
            build_record(
                {
                    "action": ACTIONS[i % len(ACTIONS)],
                    "user_id": f"user_{i % 97}",
                    "username": f"user{i % 97}@example.com",
                    "object_type": ("Customer", "Invoice", "Order")[i % 3],
                    "object_id": f"obj_{i}",
                    "object_repr": f"Object number {i}",
                    "change_message": f"Changed the status of object {i}",
                    "changes": {"status": ["draft", "sent"]} if i % 2 else None,
                    "ip_address": f"10.0.{i % 7}.{i % 250 + 1}",
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                    "request_id": f"req-{i}",
                    "source": "consumer-tests",
                    "extra": {"n": i},
                    **fields,
                },
            )
        )
    return records


def bodies_of(records: Sequence[dict[str, Any]]) -> list[bytes]:
    return [record_to_json(record) for record in records]


def _frames(bodies: Sequence[bytes], chunk: int, frame_max: int) -> list[Sequence[bytes]]:
    """``bodies`` in batches of at most ``chunk`` that each fit a publish frame (RabbitMQ 4.1
    and later close a connection that sends a larger frame than was agreed); a body larger
    than a frame goes alone, for a broker that takes it."""
    room = frame_max - 64 * 1024  # the frame's own headers and each message's envelope
    batches: list[Sequence[bytes]] = []
    start, size = 0, 0
    for index, body in enumerate(bodies):
        if index > start and (index - start >= chunk or size + len(body) > room):
            batches.append(bodies[start:index])
            start, size = index, 0
        size += len(body)
    if start < len(bodies):
        batches.append(bodies[start:])
    return batches


async def publish_async(
    settings: Settings,
    bodies: Sequence[bytes],
    *,
    chunk: int = 500,
    frame_max: int = 1024 * 1024,
) -> None:
    """Publish ``bodies`` in order and wait until the broker confirmed every one."""
    failed: list[ConfirmationStatus] = []
    confirmed = 0
    done = asyncio.Event()

    def on_confirm(status: ConfirmationStatus) -> None:
        nonlocal confirmed
        confirmed += 1
        if not status.is_confirmed:
            failed.append(status)
        if confirmed == len(bodies):
            done.set()

    async with Producer(**connect_args(settings), frame_max=frame_max) as producer:
        await producer.create_stream(
            settings.rabbitmq_stream_name, exists_ok=True, arguments=STREAM_ARGUMENTS
        )
        for batch in _frames(bodies, chunk, frame_max):
            messages = [
                AMQPMessage(body=body, properties=Properties(content_type="application/json"))
                for body in batch
            ]
            await producer.send_batch(
                settings.rabbitmq_stream_name, messages, on_publish_confirm=on_confirm
            )
        await asyncio.wait_for(done.wait(), 120)
    assert not failed, f"{len(failed)} messages were not confirmed"


def publish(settings: Settings, bodies: Sequence[bytes], **options: Any) -> None:
    asyncio.run(publish_async(settings, bodies, **options))


def publish_records(settings: Settings, count: int) -> list[dict[str, Any]]:
    """``count`` records of ``make_records``, published and confirmed."""
    records = make_records(count)
    publish(settings, bodies_of(records))
    return records


def create_stream(settings: Settings) -> None:
    async def create() -> None:
        async with Producer(**connect_args(settings)) as producer:
            await producer.create_stream(
                settings.rabbitmq_stream_name, exists_ok=True, arguments=STREAM_ARGUMENTS
            )

    asyncio.run(create())


class PacedPublisher(threading.Thread):
    """Publishes ``bodies`` at about ``per_second`` in the background (a live application)."""

    def __init__(self, settings: Settings, bodies: Sequence[bytes], per_second: int) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.bodies = bodies
        self.per_second = per_second
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by join_checked
            self.error = exc

    async def _run(self) -> None:
        step = max(1, self.per_second // 10)
        confirmed = 0
        done = asyncio.Event()

        def on_confirm(status: ConfirmationStatus) -> None:
            nonlocal confirmed
            assert status.is_confirmed
            confirmed += 1
            if confirmed == len(self.bodies):
                done.set()

        async with Producer(**connect_args(self.settings)) as producer:
            began = time.monotonic()
            for n, start in enumerate(range(0, len(self.bodies), step)):
                messages = [
                    AMQPMessage(body=body, properties=Properties(content_type="application/json"))
                    for body in self.bodies[start : start + step]
                ]
                await producer.send_batch(
                    self.settings.rabbitmq_stream_name, messages, on_publish_confirm=on_confirm
                )
                await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.monotonic()))
            await asyncio.wait_for(done.wait(), 60)

    def join_checked(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the paced publisher did not finish"
        if self.error is not None:
            raise self.error


def stored_offset(settings: Settings, name: str) -> int | None:
    """The offset stored for ``name``; rides out a short broker restart (the suite shares it)."""

    async def query() -> int | None:
        async with Consumer(**connect_args(settings)) as consumer:
            try:
                offset: int = await consumer.query_offset(settings.rabbitmq_stream_name, name)
            except OffsetNotFound:
                return None
            return offset

    deadline = time.monotonic() + 60
    while True:
        try:
            return asyncio.run(query())
        except (OSError, StreamNotAvailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_until(what: str, probe: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    """Poll ``probe`` until ``done`` holds; fail saying what was awaited and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {value!r}")
        time.sleep(0.25)


def wait_for_offset(settings: Settings, offset: int, timeout: float, name: str = NAME) -> None:
    wait_until(
        f"stored offset {offset} for {name!r}",
        lambda: stored_offset(settings, name),
        lambda value: value == offset,
        timeout,
    )


# -- the consumer as a real process ---------------------------------------------------------


def consumer_env(stack_env: dict[str, str], settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RABBITMQ_", "OPENSEARCH_", "AUDIT_LOG_", "AWS_"))
    }
    env.update(stack_env)
    env.update(
        {
            "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
            "OPENSEARCH_INDEX_PREFIX": settings.opensearch_index_prefix,
            "OPENSEARCH_HOST": settings.opensearch_host,
            "OPENSEARCH_PORT": str(settings.opensearch_port),
            "AUDIT_LOG_S3_PREFIX": settings.s3_prefix,
            "AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3 or "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ConsumerProcess:
    """``python -m audit_logging.consumer`` in its own process, its log in a file."""

    def __init__(
        self,
        env: dict[str, str],
        args: Sequence[str],
        workdir: Path,
        *,
        wrapper: Sequence[str] | None = None,
    ) -> None:
        self.env = env
        self.args = list(args)
        self.module = ["audit_logging.consumer"]
        if wrapper is not None:
            # The same consumer with a test hook the library does not ship (a module of
            # tests/consumer and its arguments, e.g. _crashing_consumer).
            self.module = list(wrapper)
            root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
            self.env = env | {"PYTHONPATH": path}
        self.workdir = workdir
        self.log_path = workdir / "consumer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ConsumerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"--- start {' '.join(self.args)}\n".encode())
        log.flush()
        # cwd is the test's own folder, so no stray .env file is read.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.module, *self.args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"the consumer did not exit within {timeout} s:\n{self.log()}"
            ) from None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.running():
            self.signal(signal.SIGKILL)
            self.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def batch_lines(self) -> int:
        return sum(
            1 for line in self.log().splitlines() if " batch " in line and "messages" in line
        )

    def __enter__(self) -> ConsumerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.kill()
