"""The consumer's ``--metrics-port``: its metrics, the dependency probes, the lag, and the
``/metrics``, ``/healthz`` and ``/readyz`` endpoints that show them.

``/readyz`` is 200 when the process is connected to the broker (every stream it reads is
subscribed, as the active member or a standby), OpenSearch and S3 answer their probes, and it
is not stopping; 503 otherwise. Either way the body says why::

    {"status": "ready" | "not ready",
     "dependencies": {"broker": true, "opensearch": true, "s3": false},
     "partitions": {"audit_logs_stream": "active"},
     "problems": ["s3: ConnectTimeoutError"]}

A healthy standby is ready: it is what takes over when the active member dies.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from audit_logging.consumer.health import Probe, opensearch_check, s3_check
from audit_logging.consumer.lag import LagWatch
from audit_logging.consumer.metrics import PrometheusRecorder, Watched
from audit_logging.errors import ConfigurationError
from audit_logging.metrics import endpoints
from audit_logging.metrics._prometheus import require_prometheus

if TYPE_CHECKING:
    from audit_logging.consumer.options import ConsumerOptions
    from audit_logging.settings import Settings

MAX_PROBLEMS: Final = 20


class Monitor:
    """Everything ``--metrics-port`` turns on, for one consumer process."""

    def __init__(
        self,
        settings: Settings,
        options: ConsumerOptions,
        stopping: Callable[[], bool],
        probes: Mapping[str, Probe] | None = None,
    ) -> None:
        """``probes``: "opensearch" and "s3" (tests give their own; by default each asks
        its service)."""
        assert options.metrics_port is not None
        client = require_prometheus()
        self.registry = client.CollectorRegistry(auto_describe=True)
        self.recorder = PrometheusRecorder(self.registry, settings.flush_interval)
        self._settings = settings
        self._stopping = stopping
        self._services: Sequence[Watched] = ()
        self._pushed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._probes = (
            dict(probes)
            if probes is not None
            else {
                "opensearch": Probe("OpenSearch", opensearch_check(settings)),
                "s3": Probe("S3", s3_check(settings)),
            }
        )
        routes = {
            "/metrics": endpoints.metrics_route(self.registry, before=self.sync),
            "/healthz": endpoints.alive,
            "/readyz": self._readyz,
        }
        host, port = options.metrics_host, options.metrics_port
        try:
            self._server = endpoints.EndpointServer(host, port, routes)
        except OSError as exc:
            raise ConfigurationError(
                "--metrics-port / --metrics-host",
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            ) from None
        self._lag_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        for probe in self._probes.values():
            probe.start()
        self._server.start()

    def attach(self, services: Sequence[Watched], *, watch_lag: bool = True) -> None:
        """The services exist: their metrics are exported and (from the running event
        loop, unless ``watch_lag`` is False) their lag is watched."""
        with self._lock:
            self._services = tuple(services)
            for service in self._services:
                self.recorder.add_stream(service.stream)
                self._pushed.setdefault(service.stream, 0)
        if watch_lag:
            watch = LagWatch(self._settings, lambda: self._services, self.recorder)
            self._lag_task = asyncio.create_task(watch.run(), name="lag")

    async def close(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)
        for probe in self._probes.values():
            probe.stop()
        # shutdown() waits for serve_forever's loop: a thread, so the event loop stays free.
        await asyncio.to_thread(self._server.close)

    # -- read from the endpoint's threads -----------------------------------------------------

    def sync(self) -> None:
        """Bring what the services count by themselves into the metrics (before a scrape)."""
        recorder = self.recorder
        with self._lock:
            for service in self._services:
                stream = service.stream
                consumed = service.consumed
                delta = consumed - self._pushed.get(stream, 0)
                if delta > 0:
                    recorder.consumed.labels(stream).inc(delta)
                    self._pushed[stream] = consumed
                recorder.active.labels(stream).set(1 if service.active else 0)
                stored = service.stored
                if stored is not None:
                    recorder.stored_offset.labels(stream).set(stored)
            for name, up in self.dependencies().items():
                recorder.dependency_up.labels(name).set(1 if up else 0)

    def dependencies(self) -> dict[str, bool]:
        services = self._services
        return {
            "broker": bool(services) and all(service.connected for service in services),
            "opensearch": self._probes["opensearch"].state()[0],
            "s3": self._probes["s3"].state()[0],
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        services = self._services
        problems: list[str] = []
        if self._stopping():
            problems.append("stopping")
        if not services:
            problems.append("starting: waiting for the broker")
        for service in services:
            if not service.connected:
                problems.append(f"broker: not subscribed to {service.stream}")
        for name, probe in self._probes.items():
            up, problem = probe.state()
            if not up:
                problems.append(f"{name}: {problem}")
        document = {
            "status": "not ready" if problems else "ready",
            "dependencies": self.dependencies(),
            "partitions": {
                service.stream: "active" if service.active else "standby" for service in services
            },
            "problems": [problem[:200] for problem in problems[:MAX_PROBLEMS]],
        }
        return not problems, document

    def _readyz(self) -> endpoints.Response:
        ready, document = self.readiness()
        return endpoints.json_response(200 if ready else 503, document)
