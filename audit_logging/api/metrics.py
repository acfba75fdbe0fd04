"""The API's Prometheus metrics: requests by route template and status, their latency, refused
credentials, and the time spent reading each tier; and who may read them.

Each app has its own registry, so several apps in one process (tests, an app mounted beside
another) never clash. Without the ``metrics`` extra the app runs and counts nothing, and
``/metrics`` says which extra to install. The names and help texts are the catalogue's
(:mod:`audit_logging.metrics.catalogue`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any, Final

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit_logging._setting_values import IPNetwork
from audit_logging.metrics._prometheus import make, require_prometheus

# The route label of any path no route matches: one value, so that a client sending random
# paths cannot grow the label set (each value is a time series the scraper keeps).
UNMATCHED: Final = "unmatched"


class ApiMetrics:
    """The API's metrics, in a registry of their own."""

    def __init__(self) -> None:
        client = require_prometheus()
        self.registry = client.CollectorRegistry(auto_describe=True)
        self._exposition = client.generate_latest
        self.content_type: str = client.CONTENT_TYPE_LATEST
        self._requests = make("audit_logging_api_requests_total", self.registry)
        self._duration = make("audit_logging_api_request_duration_seconds", self.registry)
        self._auth_failures = make("audit_logging_api_auth_failures_total", self.registry)
        self._backend = make("audit_logging_api_backend_duration_seconds", self.registry)
        # Label children looked up once: labels() takes a lock and builds a key each time.
        # Bounded: routes are the app's templates plus UNMATCHED, statuses the app's own.
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = (
                self._requests.labels(route=route, status=str(status)),
                self._duration.labels(route=route),
            )
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def auth_failure(self, reason: str) -> None:
        self._auth_failures.labels(reason=reason).inc()

    def backend(self, backend: str, seconds: float) -> None:
        self._backend.labels(backend=backend).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        data: bytes = self._exposition(self.registry)
        return data


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template and status (pure ASGI: the
    request's context variables are left alone, unlike with ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = [route for route in routes if isinstance(route, Route)]
        # The router leaves the route it chose in the scope: its template is looked up here
        # by identity (a Route is not hashable), and only a request the router never chose a
        # route for is matched again.
        self._templates = {id(route): route.path for route in self.routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Unless a response starts, the server answers an exception that escapes with 500.
        status = 500
        started = time.perf_counter()

        async def send_seeing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_seeing_status)
        finally:
            route = self._templates.get(id(scope.get("route")))
            if route is None:
                route = self.template(scope)
            self.metrics.request(route, status, time.perf_counter() - started)

    def template(self, scope: Scope) -> str:
        """The template of the route the path matches (whatever the method), else
        :data:`UNMATCHED`: for a request refused before routing (a credential in the URL),
        counted under its route all the same."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return UNMATCHED


def peer_in(scope: Scope, networks: Sequence[IPNetwork]) -> bool:
    """Whether the request's direct peer (the TCP connection's address, never a forwarding
    header, which any client can write) is in one of ``networks``."""
    client = scope.get("client")
    if not networks or not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except (ValueError, TypeError):
        return False  # a Unix socket, or a test client's made-up name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the networks hold IPv4-mapped ones in IPv4 form
    return any(address in network for network in networks)
