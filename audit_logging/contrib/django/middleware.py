"""``AuditMiddleware`` for Django's ``MIDDLEWARE``: binds each request's context (IP address,
user agent, session, user, request id) so every audit record logged while the request runs
carries it.

List it after ``SessionMiddleware`` and ``AuthenticationMiddleware``: it reads
``request.session`` and ``request.user``. It builds the context exactly as the ASGI and WSGI
middleware do (:class:`audit_logging.middleware._request.ContextBuilder`): the client address
is read from ``AUDIT_LOG_FORWARDED_HEADER`` only when the peer is one of
``AUDIT_LOGGING["TRUSTED_PROXIES"]``, the session key is stored as the library's session mode
says, the client's ``X-Request-ID`` is kept if short and plain and echoed in the response.

The user is looked up when the first record needs it, not when the request starts, so a
record logged after ``login()`` in the view carries the user who just logged in (the auth
signals rebind the user and the session on login and logout, see :mod:`.auth`). Looking the
user up reads the session from its store; from then on the record holds the session key the
store knows, so a cookie naming no live session (expired, or made up) is recorded as no
session rather than as the client's text. In the async path Django's ORM cannot run
synchronously on the event loop, so the user (and with it the session) is fetched once,
``await request.auser()``, before the view runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponseBase
from django.utils.functional import LazyObject, empty

from audit_logging.context import RequestContext, _current
from audit_logging.contrib.django.conf import (
    DJANGO_OPTIONS,
    DJANGO_SETTING,
    DjangoOption,
    django_option,
    library_settings,
)
from audit_logging.errors import ConfigurationError
from audit_logging.middleware._forwarded import parse_trusted_proxies, port_number
from audit_logging.middleware._request import (
    ContextBuilder,
    RequestAudit,
    RequestFacts,
    emit_request_record,
)
from audit_logging.record import STRING_LIMITS
from audit_logging.session_key import stored_session_key
from audit_logging.settings import Settings

if TYPE_CHECKING:
    from django.http import HttpRequest

# A trusted proxy list longer than this is a mistake, not a deployment.
MAX_TRUSTED_PROXIES = 1024


def _parse_trusted_proxies(setting: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple)):
        raise ConfigurationError(
            setting, f"must be a list of IP addresses or networks, got a {type(raw).__name__}"
        )
    if len(raw) > MAX_TRUSTED_PROXIES:
        raise ConfigurationError(setting, f"lists more than {MAX_TRUSTED_PROXIES} proxies")
    proxies: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise ConfigurationError(
                setting, f"must hold strings (addresses or networks), got a {type(item).__name__}"
            )
        proxies.append(item.strip())
    try:
        parse_trusted_proxies(proxies)
    except ConfigurationError as exc:
        # Name the Django setting, not the ASGI middleware's parameter.
        raise ConfigurationError(setting, str(exc).partition(": ")[2]) from None
    return tuple(proxies)


DJANGO_OPTIONS["TRUSTED_PROXIES"] = DjangoOption(
    (),
    _parse_trusted_proxies,
    "the proxies (addresses or CIDR networks) whose forwarding header the middleware reads "
    "for the client's address; empty: the direct peer is the client",
)

_AUDIT_REQUEST_KEYS = ("methods", "path_prefixes", "exclude_prefixes", "action")


def _parse_audit_requests(setting: str, raw: Any) -> RequestAudit | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return RequestAudit()
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            setting, f"must be True, False or a dict of {', '.join(_AUDIT_REQUEST_KEYS)}, "
            f"got a {type(raw).__name__}"
        )
    unknown = sorted(str(key) for key in raw if key not in _AUDIT_REQUEST_KEYS)
    if unknown:
        raise ConfigurationError(setting, f"has unknown key(s) {', '.join(unknown)[:200]}")
    values: dict[str, Any] = {}
    for key in ("methods", "path_prefixes", "exclude_prefixes"):
        if key in raw:
            items = raw[key]
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise ConfigurationError(f"{setting}[{key!r}]", "must be a list of strings")
            values[key] = (
                frozenset(i.upper() for i in items) if key == "methods" else tuple(items)
            )
    if "action" in raw:
        action = raw["action"]
        if not isinstance(action, str) or not 0 < len(action) <= STRING_LIMITS["action"]:
            raise ConfigurationError(
                f"{setting}['action']",
                f"must be a string of 1 to {STRING_LIMITS['action']} characters",
            )
        values["action"] = action
    return RequestAudit(**values)


DJANGO_OPTIONS["AUDIT_REQUESTS"] = DjangoOption(
    None,
    _parse_audit_requests,
    "one automatic record per request: True (POST, PUT, PATCH and DELETE), or a dict of "
    "methods, path_prefixes, exclude_prefixes and action",
)

MIDDLEWARE_PATH = "audit_logging.contrib.django.middleware.AuditMiddleware"


def trusted_proxies() -> tuple[str, ...]:
    value: tuple[str, ...] = django_option("TRUSTED_PROXIES")
    return value


def trusts_everyone(proxies: tuple[str, ...]) -> bool:
    """Whether a network in ``proxies`` spans a whole address family (then any client can
    write the address it wants recorded)."""
    return any(ipaddress.ip_network(p, strict=False).prefixlen == 0 for p in proxies)


def context_builder(settings: Settings | None = None) -> ContextBuilder:
    """The ContextBuilder the middleware uses, from the Django settings."""
    settings = settings if settings is not None else library_settings()
    if settings.session_key_mode == "hash" and settings.hash_key is None:
        raise ConfigurationError(
            "AUDIT_LOG_HASH_KEY",
            "is required to store session keys hashed (AUDIT_LOG_SESSION_KEY_MODE=hash); "
            f"set it in the environment or in {DJANGO_SETTING}, "
            "or set AUDIT_LOG_SESSION_KEY_MODE to drop",
        )
    # Sessions come from request.session, never from a cookie read by the builder.
    return ContextBuilder(settings, trusted_proxies(), None, True)


class _MetaHeaders(Mapping[str, str]):
    """The request's headers, lower-case names, read from ``request.META`` on demand (the
    builder reads three or four of them; no dict of every header is built)."""

    __slots__ = ("_meta",)

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self._meta = meta

    def __getitem__(self, name: str) -> str:
        value = self._meta["HTTP_" + name.upper().replace("-", "_")]
        return str(value)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        for key in self._meta:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").lower()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def user_identity(user: Any) -> tuple[str | None, str | None] | None:
    """``(user_id, username)`` of an authenticated Django user, else None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    pk = getattr(user, "pk", None)
    get_username = getattr(user, "get_username", None)
    username = get_username() if callable(get_username) else None
    return (None if pk is None else str(pk), None if username is None else str(username))


def session_key_of(request: Any) -> str | None:
    """The key of the request's Django session, as the session holds it now."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    return key if isinstance(key, str) and key else None


def session_is_loaded(request: Any) -> bool:
    """Whether Django has read the request's session from its store: from then on its key
    is one the store knows (a cookie naming no live session, stale or forged, has none)."""
    return bool(getattr(getattr(request, "session", None), "accessed", False))


def stored_session(request: Any, settings: Settings) -> str | None:
    return stored_session_key(
        session_key_of(request), settings.session_key_mode, settings.hash_key
    )


def _user_resolver(
    request: HttpRequest, context: list[RequestContext], settings: Settings, prefetched: Any
) -> Callable[[], Any]:
    def resolve() -> tuple[str | None, str | None] | None:
        user = getattr(request, "user", None)
        if isinstance(user, LazyObject) and user._wrapped is empty and prefetched is not None:
            # The async path fetched it already; evaluating the lazy object here would run
            # the ORM synchronously on the event loop.
            user = prefetched
        identity = user_identity(user)  # loads the session (in the sync path)
        if context and session_is_loaded(request):
            # The key as the store knows it, not as the client's cookie said.
            context[0].session_key = stored_session(request, settings)
        return identity

    return resolve


class AuditMiddleware:
    """Binds the request context for each request (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        self.builder = context_builder()
        self.audit_requests: RequestAudit | None = django_option("AUDIT_REQUESTS")

    def context(
        self, request: HttpRequest, facts: RequestFacts, prefetched_user: Any = None
    ) -> RequestContext:
        # Filled once built: the resolver updates the context's session when it runs.
        built: list[RequestContext] = []
        context = self.builder.build(
            facts,
            session_key_of(request),
            _user_resolver(request, built, self.builder.settings, prefetched_user),
        )
        built.append(context)
        return context

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        facts = _facts(request)
        context = self.context(request, facts)
        token = _current.set(context)
        status = 500
        try:
            # The sync chain: get_response returns the response itself.
            response = cast("HttpResponseBase", self.get_response(request))
            status = response.status_code
            response["X-Request-ID"] = context.request_id or ""
            return response
        finally:
            # Also when the view raised (Django turns that into a 500 further out).
            self._audit_request(facts, status)
            _current.reset(token)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        prefetched = None
        auser = getattr(request, "auser", None)
        if auser is not None:
            prefetched = await auser()
        facts = _facts(request)
        context = self.context(request, facts, prefetched)
        token = _current.set(context)
        status = 500
        try:
            response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
            status = response.status_code
            response["X-Request-ID"] = context.request_id or ""
            return response
        finally:
            self._audit_request(facts, status)
            _current.reset(token)

    def _audit_request(self, facts: RequestFacts, status: int) -> None:
        rule = self.audit_requests
        if rule is not None and rule.matches(facts.method, facts.path):
            emit_request_record(rule, facts, status)


def _facts(request: HttpRequest) -> RequestFacts:
    return RequestFacts(
        peer=request.META.get("REMOTE_ADDR") or None,
        # (under an ASGI server, a rewritten client's port is 0: the builder warns of it)
        peer_port=port_number(request.META.get("REMOTE_PORT")),
        headers=_MetaHeaders(request.META),
        method=request.method or "GET",
        path=request.path,
    )
