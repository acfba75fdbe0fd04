"""Request context: who is asking and from where, bound for the duration of a request.

The middleware binds a :class:`RequestContext` in a ``ContextVar``; ``log_audit_event`` and
the logging handler read it, so a record logged anywhere inside a request carries the IP,
user agent, session, user and request id without the caller passing them. Contextvars
follow asyncio tasks and are per thread, so concurrent requests never see each other's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

# (user_id, username) for the current request, computed on first use.
UserResolver = Callable[[], "tuple[str | None, str | None] | None"]
# The session key in its stored form, or None while the request has no session yet.
SessionResolver = Callable[[], "str | None"]

# Record fields a context can fill, in the order RequestContext.fields() yields them.
CONTEXT_FIELDS = ("ip_address", "user_agent", "session_key", "request_id", "user_id", "username")


@dataclasses.dataclass(kw_only=True, slots=True, eq=False)
class RequestContext:
    """What the middleware knows about the current request.

    ``session_key`` is already in its stored form (hashed by default); the raw key never
    lives here. The user may be known late (authentication runs inside the middleware), so it
    can come from a resolver called on first use, or be set with :func:`bind_user`.
    """

    ip_address: str | None = None
    user_agent: str | None = None
    # Never in a repr: in raw mode it is the session's own key.
    session_key: str | None = dataclasses.field(default=None, repr=False)
    request_id: str | None = None
    user_id: str | None = None
    username: str | None = None
    user_resolver: dataclasses.InitVar[UserResolver | None] = None
    # Why a field is missing (e.g. an invalid forwarded address), kept in "extra".
    notes: dict[str, str] = dataclasses.field(init=False, default_factory=dict)
    # Fields the middleware had to cut (e.g. a long user agent), for "truncated".
    truncated: list[str] = dataclasses.field(init=False, default_factory=list)
    _resolver: UserResolver | None = dataclasses.field(init=False, default=None, repr=False)
    _resolved: bool = dataclasses.field(init=False, default=True, repr=False)
    _session_resolver: SessionResolver | None = dataclasses.field(
        init=False, default=None, repr=False
    )

    def __post_init__(self, user_resolver: UserResolver | None) -> None:
        self._resolver = user_resolver
        self._resolved = user_resolver is None

    def _resolve_user(self) -> None:
        self._resolved = True
        if self._resolver is None or self.user_id is not None or self.username is not None:
            return
        try:
            found = self._resolver()
        except Exception:  # noqa: BLE001 - an app's user lookup must not break its logging
            return
        if found is not None:
            self.user_id, self.username = found

    def resolve_user_with(self, resolver: UserResolver) -> None:
        """Find the user with ``resolver`` when a record first needs it (a framework's
        user is known only once its own middleware ran)."""
        self._resolver = resolver
        self._resolved = False

    def resolve_session_with(self, resolver: SessionResolver) -> None:
        """Find the stored session key with ``resolver`` when a record needs it, until it
        gives one: a session may start in the middle of a request (a login)."""
        self._session_resolver = resolver

    def _resolve_session(self) -> None:
        try:
            found = self._session_resolver() if self._session_resolver is not None else None
        except Exception:  # noqa: BLE001 - an app's session lookup must not break its logging
            return
        if found is not None:
            self.session_key = found
            self._session_resolver = None

    def fields(self) -> dict[str, Any]:
        """The record fields this context fills (absent ones left out)."""
        if not self._resolved:
            self._resolve_user()
        if self._session_resolver is not None:
            self._resolve_session()
        values = (
            self.ip_address,
            self.user_agent,
            self.session_key,
            self.request_id,
            self.user_id,
            self.username,
        )
        found: dict[str, Any] = {
            name: v for name, v in zip(CONTEXT_FIELDS, values, strict=True) if v is not None
        }
        if self.notes:
            found["extra"] = dict(self.notes)
        if self.truncated:
            found["truncated"] = list(self.truncated)
        return found


_current: ContextVar[RequestContext | None] = ContextVar("audit_logging_request", default=None)


def current_context() -> RequestContext | None:
    return _current.get()


@contextlib.contextmanager
def bind_context(context: RequestContext) -> Iterator[RequestContext]:
    """Make ``context`` the current request context until the block ends."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind_user(user_id: object | None, username: str | None = None) -> None:
    """Say who the current request's user is (for frameworks where the middleware cannot
    see it, such as Django's ``request.user``). Outside a request this does nothing."""
    context = _current.get()
    if context is None:
        return
    context.user_id = None if user_id is None else str(user_id)
    context.username = username
    context._resolved = True
