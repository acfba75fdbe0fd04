"""What ASGI and WSGI middleware share: reading a request's who-and-where, safely.

Everything here reads untrusted input (headers, cookies, the peer address), so every
value is bounded and checked: the client address comes from
:mod:`audit_logging.middleware._forwarded`, a session key from the client is always hashed
(whatever it looks like), a user agent is cut and cleaned of control characters, and a
request id from the client is kept only if it is short and plain.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from audit_logging.context import RequestContext, UserResolver
from audit_logging.errors import ConfigurationError
from audit_logging.middleware._forwarded import ClientAddress
from audit_logging.middleware._server_rewrite import notice_rewritten_client
from audit_logging.record import STRING_LIMITS
from audit_logging.session_key import stored_session_key
from audit_logging.settings import Settings

# Cookie headers are bigger than forwarding headers (many cookies of up to 4 KB each);
# past this, the header is not read at all rather than read in part.
MAX_COOKIE_CHARS: Final = 64 * 1024
# Used with fullmatch: ``$`` would accept a trailing newline.
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# C0 controls and DEL: CR/LF would forge lines in any log or CSV the field lands in.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_REPLACEMENT: Final = "\ufffd"

audit_logger = logging.getLogger("audit")


@dataclass(frozen=True)
class RequestAudit:
    """Which requests get one automatic audit record each (emitted when the response is
    done, also when it failed), and the action it carries."""

    methods: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
    path_prefixes: tuple[str, ...] = ("/",)
    exclude_prefixes: tuple[str, ...] = ()
    action: str = "HTTP_REQUEST"

    def matches(self, method: str, path: str) -> bool:
        return (
            method.upper() in self.methods
            and path.startswith(self.path_prefixes)
            and not (self.exclude_prefixes and path.startswith(self.exclude_prefixes))
        )


@dataclass
class RequestFacts:
    """One request's raw facts, gathered by the ASGI or WSGI side."""

    peer: str | None
    headers: Mapping[str, str]  # lower-case names, joined with ", " when repeated
    method: str
    path: str
    peer_port: int | None = None  # None when the server does not say
    started: float = field(default_factory=time.perf_counter)


class ContextBuilder:
    """Builds a request's :class:`RequestContext` under the middleware's options."""

    def __init__(
        self,
        settings: Settings | None,
        trusted_proxies: Iterable[str],
        session_cookie: str | None,
        session_provided: bool,
        forwarded_header: str | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.client_ip = ClientAddress(
            trusted_proxies,
            forwarded_header if forwarded_header is not None else self.settings.forwarded_header,
        )
        self.session_cookie = session_cookie
        if session_cookie is not None or session_provided:
            require_hash_key(self.settings, "session_cookie=None")

    def build(
        self, facts: RequestFacts, raw_session: str | None, user_resolver: UserResolver | None
    ) -> RequestContext:
        notice_rewritten_client(facts.peer, facts.peer_port, facts.headers, self.client_ip.trusted)
        ip, note = self.client_ip(facts.peer, facts.headers)
        user_agent, cut = clean_user_agent(facts.headers.get("user-agent"))
        if raw_session is None and self.session_cookie is not None:
            raw_session = cookie_value(facts.headers.get("cookie"), self.session_cookie)
        context = RequestContext(
            ip_address=ip,
            user_agent=user_agent,
            session_key=stored_session_key(
                raw_session, self.settings.session_key_mode, self.settings.hash_key
            ),
            request_id=request_id(facts.headers.get("x-request-id")),
            user_resolver=user_resolver,
        )
        if note:
            context.notes["ip_address_note"] = note
        if cut:
            context.truncated.append("user_agent")
        return context


def require_hash_key(settings: Settings, opt_out: str) -> None:
    """Refuse to read session keys that could only be stored hashed without a key to hash
    them with; ``opt_out`` names the option that reads no session."""
    if settings.session_key_mode == "hash" and settings.hash_key is None:
        raise ConfigurationError(
            "AUDIT_LOG_HASH_KEY",
            "is required to store session keys hashed (AUDIT_LOG_SESSION_KEY_MODE=hash); "
            f"set it, or set AUDIT_LOG_SESSION_KEY_MODE=drop, or pass {opt_out}",
        )


def clean_user_agent(given: str | None) -> tuple[str | None, bool]:
    """The user agent as stored (cut to its limit, control characters replaced by
    U+FFFD) and whether it was cut."""
    if not given:
        return None, False
    limit = STRING_LIMITS["user_agent"]
    text = _as_utf8(given[: limit * 4])
    cut = len(text) > limit or len(given) > limit * 4
    text = _CONTROL_RE.sub(CONTROL_REPLACEMENT, text[:limit])
    return text or None, cut


def _as_utf8(value: str) -> str:
    """Header values arrive as latin-1 text (the bytes as they were); most non-ASCII user
    agents are UTF-8, so read them as such when they are."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def request_id(given: str | None) -> str:
    """The client's X-Request-ID if it is short and plain, else a new one."""
    if given and _REQUEST_ID_RE.fullmatch(given):
        return given
    return uuid.uuid4().hex


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name``: the last one when it is sent twice; None when absent,
    empty, or the header is over :data:`MAX_COOKIE_CHARS`. Never raises."""
    if not header or len(header) > MAX_COOKIE_CHARS:
        return None
    found: str | None = None
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found = value or None
    return found


def emit_request_record(rule: RequestAudit, facts: RequestFacts, status: int) -> None:
    """The automatic per-request record, logged like any other audit record."""
    duration_ms = round((time.perf_counter() - facts.started) * 1000, 3)
    extra: dict[str, Any] = {
        "action": rule.action,
        "object_type": "http_request",
        "object_id": facts.path[: STRING_LIMITS["object_id"]],
        "extra": {
            "method": facts.method,
            "path": facts.path[:2048],
            "status_code": status,
            "duration_ms": duration_ms,
        },
    }
    audit_logger.info("%s %s -> %d", facts.method, facts.path[:2048], status, extra=extra)
