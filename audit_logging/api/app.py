"""The Starlette app: its handlers, authentication and the reads' own audit trail."""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audit_logging._setting_values import IPNetwork
from audit_logging.api import errors
from audit_logging.api.auth import (
    TOKENS_SETTING,
    Authenticator,
    BearerTokenAuthenticator,
    Caller,
    configured_tokens,
    failure_reason,
)
from audit_logging.api.credentials import RefuseCredentialsInQuery
from audit_logging.api.cursor import encode_cursor
from audit_logging.api.exception_handlers import (
    EXCEPTION_HANDLERS,
    guarded,
)
from audit_logging.api.metrics import ApiMetrics, MetricsMiddleware, peer_in
from audit_logging.api.openapi import OPERATIONS, openapi_document
from audit_logging.api.params import PROOF, parse_detail, parse_search, single_values
from audit_logging.api.readiness import OK, Readiness, readiness
from audit_logging.api.tiered import TieredReads
from audit_logging.errors import ConfigurationError, MissingExtraError, shown
from audit_logging.record import FIELDS
from audit_logging.record_filter import SessionLookup, session_lookup
from audit_logging.search_index import make_async_client

if TYPE_CHECKING:
    from opensearchpy import AsyncOpenSearch

    from audit_logging.archive.search import ArchiveSearch
    from audit_logging.settings import Settings

logger = logging.getLogger("audit_logging.api")

AUDIT_OBJECT_TYPE: Final = "AuditLog"
TIER_HEADER: Final = "X-Audit-Log-Tier"  # which tier a detail came from: index or archive
_UUID_RE: Final = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
METRICS_OFF: Final = (
    "Metrics are turned off on this server (create_app(metrics=False), or --no-metrics)"
)


def create_app(
    settings: Settings,
    *,
    authenticator: Authenticator | None = None,
    allow_no_auth: bool = False,
    client: AsyncOpenSearch | None = None,
    opensearch_timeout: float = 10.0,
    archive_timeout: float = 30.0,
    audit_logger: logging.Logger | None = None,
    metrics: bool = True,
) -> Starlette:
    """The query API as an ASGI app.

    Callers are authenticated by ``authenticator`` if given, else by the Bearer tokens of
    ``AUDIT_LOG_API_TOKENS`` / ``AUDIT_LOG_API_TOKENS_FILE``. With neither, the app refuses
    to start unless ``allow_no_auth`` (for local development only) is set.

    ``client`` is used as given and left open; without it the app makes its own from
    ``settings`` and closes it when the app's lifespan ends. Reads are audited through
    ``audit_logger`` (default: the ``audit`` logger). A search's archive part stops after
    ``archive_timeout`` seconds (the answer then says so in its notices).

    With ``metrics`` (and the ``metrics`` extra installed), requests, refused credentials
    and tier reads are counted in the app's own Prometheus registry, served at ``/metrics``
    to callers with a token or from ``AUDIT_LOG_METRICS_NETWORKS``.
    """
    if authenticator is None:
        tokens = configured_tokens(settings)
        if tokens:
            authenticator = BearerTokenAuthenticator(tokens)
        elif allow_no_auth:
            logger.warning(
                "THE AUDIT LOG API IS RUNNING WITHOUT AUTHENTICATION: anyone who can reach it "
                "can read every audit record. Set %s for anything but local development.",
                TOKENS_SETTING,
            )
            authenticator = _anonymous
        else:
            raise ConfigurationError(
                TOKENS_SETTING,
                "is not set (nor AUDIT_LOG_API_TOKENS_FILE): the API will not serve audit "
                "records without authentication (for local development only: "
                "--insecure-no-auth / allow_no_auth=True)",
            )
    kept, metrics_off = _metrics(metrics)
    owns_client = client is None
    if client is None:
        client = make_async_client(settings, timeout=opensearch_timeout, max_retries=1)
    archive = _archive(settings)
    api = _Api(
        client=client,
        authenticator=authenticator,
        audit=audit_logger if audit_logger is not None else logging.getLogger("audit"),
        session_key=session_lookup(settings),
        reads=TieredReads(client, settings.opensearch_index_prefix, archive=archive,
                          retention_months=settings.retention_months,
                          timeout=opensearch_timeout, archive_seconds=archive_timeout,
                          on_read=kept.backend if kept is not None else None),
        metrics=kept,
        metrics_off=metrics_off,
        metrics_networks=settings.metrics_networks,
        readiness=readiness(client, settings, archive=archive is not None),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            api.readiness.close()
            if owns_client:
                await api.client.close()

    # The routes the OpenAPI document lists, each served by the method it names.
    routes = [
        Route(op.path, guarded(getattr(api, op.handler)), methods=[op.method]) for op in OPERATIONS
    ]
    app = Starlette(
        routes=routes,
        # Before routing and authentication: a token in the URL is refused even when valid.
        # The search's session filter is the one credential a route takes by design.
        middleware=[
            # Outermost, so that every answer is counted, the refusals below included.
            *([Middleware(MetricsMiddleware, metrics=kept, routes=routes)] if kept else []),
            Middleware(
                RefuseCredentialsInQuery,
                accepted={op.path: op.credential_params for op in OPERATIONS},
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # No redirect to the trailing-slash form: behind a TLS-terminating proxy the redirect
    # could point at http://, and clients that follow it would resend the Bearer token.
    app.router.redirect_slashes = False
    return app


def _metrics(wanted: bool) -> tuple[ApiMetrics | None, str]:
    """The app's metrics, or None and why /metrics has none: the API runs without them."""
    if not wanted:
        return None, METRICS_OFF
    try:
        return ApiMetrics(), ""
    except MissingExtraError as exc:
        logger.info("The API keeps no metrics: %s", exc)
        return None, f"Metrics are not available on this server: {exc}"


def _archive(settings: Settings) -> ArchiveSearch | None:
    """The archive's reader when a bucket is set (imported only then: pyarrow is heavy)."""
    if settings.s3_bucket is None:
        return None
    try:
        from audit_logging.archive.search import ArchiveSearch
        from audit_logging.archive.store import ArchiveStore
    except ImportError as exc:  # AUDIT_LOG_AWS_S3_BUCKET is set: the archive is read
        raise MissingExtraError("api", "pyarrow") from exc
    return ArchiveSearch(ArchiveStore(settings))


def _anonymous(headers: Mapping[str, str]) -> Caller:
    return Caller(id="anonymous", name="anonymous (authentication disabled)")


class _Api:
    def __init__(
        self,
        *,
        client: AsyncOpenSearch,
        authenticator: Authenticator,
        audit: logging.Logger,
        session_key: SessionLookup,
        reads: TieredReads,
        metrics: ApiMetrics | None,
        metrics_off: str,
        metrics_networks: tuple[IPNetwork, ...],
        readiness: Readiness,
    ) -> None:
        self.client = client
        self.authenticator = authenticator
        self.audit = audit
        self.session_key = session_key
        self.reads = reads
        self.metrics = metrics
        self.metrics_off = metrics_off
        self.metrics_networks = metrics_networks
        self.readiness = readiness
        self._openapi = openapi_document(OPERATIONS)

    async def caller(self, request: Request) -> Caller:
        found = self.authenticator(request.headers)
        if inspect.isawaitable(found):
            found = await found
        if found is None:
            if self.metrics is not None:
                self.metrics.auth_failure(failure_reason(request.headers))
            raise errors.UnauthorizedError(
                "A valid 'Authorization: Bearer <token>' header is required"
            )
        return found

    async def search(self, request: Request) -> Response:
        caller = await self.caller(request)
        params = parse_search(request.query_params.multi_items(), self.session_key)
        answer = await self.reads.search(params, caller.visible_filter)
        count, results = answer.count, answer.results
        self._audit_read(
            caller,
            "SEARCH",
            f"Searched audit logs: {count} matches, {len(results)} returned",
            extra={
                "filters": params.filters(),
                "page_size": params.page_size,
                "from_offset": params.offset,
                "count": count,
                "returned": len(results),
                "tiers": answer.tiers,
            },
        )
        body = {
            "count": count,
            "page_size": params.page_size,
            "from_offset": params.offset,
            "next": encode_cursor(answer.next) if answer.next is not None else None,
            "results": results,
            "tiers": answer.tiers,
            "notices": answer.notes,
        }
        return JSONResponse(body, headers=errors.NO_STORE)

    async def detail(self, request: Request) -> Response:
        caller = await self.caller(request)
        proof = parse_detail(request.query_params.multi_items())
        if proof and self.reads.archive is None:
            raise errors.BadParameterError(
                PROOF, "cannot be answered: this API is not set up to read the archive"
                " (AUDIT_LOG_AWS_S3_BUCKET is not set)")
        raw_id: str = request.path_params["log_id"]
        if not _UUID_RE.fullmatch(raw_id):
            # Not an id any record can have: nothing to look up, and nothing to audit.
            raise errors.NotFoundError(f"No audit record with log_id '{shown(raw_id)}'")
        log_id = str(uuid.UUID(raw_id))
        found = await self.reads.detail(log_id, caller.visible_filter, FIELDS, proof=proof)
        record, tiers = found.record, found.tiers
        extra: dict[str, Any] = {"found": record is not None, "tiers": tiers}
        if found.proof is not None:
            extra["proof"] = found.proof["status"]
        # Audited found or not: probing for ids is worth knowing about too.
        self._audit_read(
            caller,
            "VIEW",
            f"Viewed audit log {log_id}" if record else f"Audit log {log_id} not found",
            object_id=log_id,
            extra=extra,
        )
        if record is None:
            raise errors.NotFoundError(f"No audit record with log_id '{log_id}'")
        body = record if found.proof is None else {**record, "proof": found.proof}
        return JSONResponse(body, headers={**errors.NO_STORE, TIER_HEADER: tiers[-1]})

    async def openapi(self, request: Request) -> Response:
        await self.caller(request)
        single_values(request.query_params.multi_items(), ())
        return JSONResponse(self._openapi)

    async def liveness(self, request: Request) -> Response:
        # The process serves requests; nothing else is asked (a liveness probe that failed
        # with OpenSearch would restart every API process for a fault they cannot mend).
        single_values(request.query_params.multi_items(), ())
        return JSONResponse({"status": "alive"}, headers=errors.NO_STORE)

    async def ready(self, request: Request) -> Response:
        single_values(request.query_params.multi_items(), ())
        checks = await self.readiness.check()
        if all(state == OK for state in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks}, headers=errors.NO_STORE)
        return JSONResponse(
            {"status": "unavailable", "checks": checks},
            status_code=503,
            headers={**errors.NO_STORE, **errors.UnavailableError("").headers()},
        )

    async def prometheus(self, request: Request) -> Response:
        # The direct peer, never a forwarding header: any client can write one.
        if not peer_in(request.scope, self.metrics_networks):
            await self.caller(request)
        single_values(request.query_params.multi_items(), ())
        if self.metrics is None:
            raise errors.MetricsUnavailableError(self.metrics_off)
        return Response(
            self.metrics.exposition(),
            media_type=self.metrics.content_type,
            headers=errors.NO_STORE,
        )

    def _audit_read(
        self,
        caller: Caller,
        action: str,
        message: str,
        *,
        object_id: str | None = None,
        extra: dict[str, Any],
    ) -> None:
        fields: dict[str, Any] = {
            "action": action,
            "user_id": caller.id,
            "object_type": AUDIT_OBJECT_TYPE,
            "extra": extra,
        }
        # Left out rather than None, so request context (if any) may fill them.
        if caller.name is not None:
            fields["username"] = caller.name
        if object_id is not None:
            fields["object_id"] = object_id
        self.audit.info(message, extra=fields)
