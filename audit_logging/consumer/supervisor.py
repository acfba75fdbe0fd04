"""One consumer process: a :class:`ConsumerService` per stream it may read, and the signals.

On a single stream that is one service. On a super stream (``AUDIT_LOG_STREAM_PARTITIONS``
= N > 1) it is one per partition, each subscribed as a member of the consumer group with
the super stream's name, so that RabbitMQ makes this process active on some partitions and
a standby on the others, and moves partitions when a member joins or leaves.

Every service stops when one of them fails (an infrastructure fault): the process exits
non-zero, a supervisor (systemd, Kubernetes) starts it again, and meanwhile the standbys of
the other members take its partitions over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from audit_logging.archive.signing import Signer, load_signer
from audit_logging.consumer import stream
from audit_logging.consumer.daily_verify import DailyVerify
from audit_logging.consumer.metrics import NO_METRICS
from audit_logging.consumer.service import ConsumerService
from audit_logging.errors import ConfigurationError, describe_error
from audit_logging.partitions import check_count, settled_partitions, single_is_not_super
from audit_logging.retry import Waiter

if TYPE_CHECKING:
    from audit_logging.consumer.monitor import Monitor
    from audit_logging.consumer.options import ConsumerOptions
    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        options: ConsumerOptions,
        *,
        on_uploaded: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._options = options
        self._on_uploaded = on_uploaded
        self._services: list[ConsumerService] = []
        self._stopping = asyncio.Event()
        self._signals = 0
        self._verify: asyncio.Task[None] | None = None
        self._monitor: Monitor | None = None

    async def run(self) -> int:
        """Consume until SIGTERM/SIGINT; the process exit code (0, 1 or 2 for a setting)."""
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError):  # not the main thread: the embedder stops it
                continue
            handled.append(sig)
        try:
            try:
                self._start_monitor()
                signer = self._signer()
                partitions = await self._partitions()
            except ConfigurationError as exc:
                _log.error("%s", exc)
                return 2
            if partitions is None:
                return 0  # stopped while waiting for the broker
            self._services = [
                ConsumerService(
                    self._settings,
                    self._options,
                    partition=partition,
                    retention=index == 0,
                    on_uploaded=self._on_uploaded,
                    signer=signer,
                    metrics=NO_METRICS if self._monitor is None else self._monitor.recorder,
                )
                for index, partition in enumerate(partitions)
            ]
            if self._stopping.is_set():
                return 0
            if self._monitor is not None:
                self._monitor.attach(self._services)
            return await self._run_services()
        finally:
            if self._monitor is not None:
                await self._monitor.close()
            for sig in handled:
                loop.remove_signal_handler(sig)

    def _start_monitor(self) -> None:
        """--metrics-port: the endpoints answer from the start (/readyz says what we wait
        for); prometheus-client is imported only here."""
        if self._options.metrics_port is None:
            return
        from audit_logging.consumer.monitor import Monitor

        self._monitor = Monitor(self._settings, self._options, self._stopping.is_set)
        self._monitor.start()
        _log.info(
            "serving /metrics, /healthz and /readyz on http://%s:%d",
            self._options.metrics_host,
            self._monitor.port,
        )

    def _signer(self) -> Signer | None:
        path = self._settings.signing_key_file
        if path is None:
            _log.warning(
                "AUDIT_LOG_SIGNING_KEY_FILE is not set: the archive's digests are chained and "
                "hashed but not signed, so anyone who can write to the bucket could rewrite "
                "them; see the README's Integrity section"
            )
            return None
        signer = load_signer(path)
        _log.info("digests are signed with key %s", signer.key_id)
        return signer

    def stop(self) -> None:
        self._stopping.set()
        if self._verify is not None:
            # A check in progress is killed, never waited for: the flush needs nothing of it.
            self._verify.cancel()
        for service in self._services:
            service.stop()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            _log.info("%s: stopping; flushing what was read", sig.name)
            self.stop()
        else:
            _log.warning("%s again: stopping now without flushing", sig.name)
            self._stopping.set()
            for service in self._services:
                service.abandon()

    async def _run_services(self) -> int:
        tasks = {asyncio.create_task(service.run()): service for service in self._services}
        self._start_verify()
        pending = set(tasks)
        try:
            while pending:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if pending and not self._stopping.is_set():
                    # One partition's service ended by itself (a fault or a refused setting):
                    # the process stops with it, the others flushing first.
                    _log.error("stopping every partition: one of them stopped on its own")
                    self.stop()
        finally:
            if self._verify is not None:
                self._verify.cancel()
                await asyncio.gather(self._verify, return_exceptions=True)
        return max(task.result() for task in tasks)

    def _start_verify(self) -> None:
        every = self._options.verify_every
        if every is None:
            return
        # The process active on the first stream checks: one check per group, not per member.
        first = self._services[0]
        daily = DailyVerify(self._settings, every, lambda: first.active)
        self._verify = asyncio.create_task(daily.run(), name="verify")

    async def _partitions(self) -> list[str | None] | None:
        """[None] for a single stream (its service reads ``RABBITMQ_STREAM_NAME``), or the
        super stream's partitions, waiting for the broker and the super stream as long as it
        takes; None if stopped meanwhile."""
        count = self._settings.stream_partitions
        if count == 1:
            return [None]
        name = self._settings.rabbitmq_stream_name
        waiter = Waiter(f"RabbitMQ super stream '{name}'", maximum=10.0)
        while not self._stopping.is_set():
            consumer = stream.make_consumer(self._settings, self._options.consumer_name, _ignore)
            try:
                await asyncio.wait_for(consumer.start(), 10)
                found = await asyncio.wait_for(settled_partitions(consumer, name, count), 20)
                if found:
                    partitions: list[str | None] = list(check_count(name, count, found))
                    return partitions
                if await asyncio.wait_for(consumer.stream_exists(name), 10):
                    raise single_is_not_super(name, count)
                reason = "the super stream does not exist yet (a producer creates it)"
            except ConfigurationError:
                raise
            except Exception as exc:  # noqa: BLE001 - unreachable or refused: wait and retry
                reason = describe_error(exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.close(), 10)
            await waiter.pause(reason, self._stopping)
        return None


async def _ignore(_: object) -> None:
    return None
