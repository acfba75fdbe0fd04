"""Credentials in the query string: refused with 400, and kept out of the access log.

A URL is written down by every access log, proxy and browser history on its way, so a token
sent as ``?access_token=...`` has leaked before the API could check it. The API therefore
answers any query parameter named like a credential with 400, before authentication (a
valid token is refused too: it must be revoked either way), and the server's access log
shows the whole query string of such a request as ``[redacted]``.

A name is "like a credential" when, compared without case and without ``-``, ``_`` and
``.``, it is one of :data:`CREDENTIAL_NAMES` or ends with one of
:data:`CREDENTIAL_SUFFIXES` (``access_token``, ``X-Api-Key``, ``client_secret``, ...).

One route takes a credential on purpose: the search's ``session`` filter (a raw session key,
turned into its stored form before the lookup). The middleware lets exactly that name through
on that route, as a parameter of its own; the access log still shows such a query string as
``[redacted]``, so the key never reaches it.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Collection, Mapping
from typing import Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from audit_logging.api.errors import CredentialInQueryError, error_response

REDACTED: Final = "[redacted]"
CREDENTIAL_NAMES: Final = frozenset(
    {
        "auth",
        "authorization",
        "bearer",
        "credential",
        "credentials",
        "jwt",
        "key",
        "pass",
        "pwd",
        "session",
        "sessionid",
        "sessionkey",
        "sid",
    }
)
CREDENTIAL_SUFFIXES: Final = ("token", "secret", "password", "passwd", "apikey", "accesskey")
_IGNORED_RE: Final = re.compile(r"[-_.\s]")
# Where a parameter ends for some reader of the URL: '&' for all, ';' for older parsers, '?'
# and '#' for a client that built the URL badly. A name found after any of them is refused:
# the one credential-named parameter of the API (the search's session) is accepted only
# where Starlette reads it as a parameter, at the start of an '&'-separated pair.
_SEPARATOR_RE: Final = re.compile(r"[;?#]")
# A query string in a log line: from the first '?' to the end of the word (a request target
# holds no whitespace).
_QUERY_RE: Final = re.compile(r"\?(?P<query>\S*)")


def is_credential_name(name: str) -> bool:
    """Whether a (decoded) query parameter name is named like a credential."""
    compact = _IGNORED_RE.sub("", name).lower()
    return compact in CREDENTIAL_NAMES or compact.endswith(CREDENTIAL_SUFFIXES)


def credential_in_query(query_string: bytes | str, accepted: Collection[str] = ()) -> str | None:
    """The first parameter of ``query_string`` named like a credential, else ``None``.

    Names are cut at every separator of :data:`_SEPARATOR_RE` and at '&', so they include
    every name Starlette's ``parse_qsl`` reads (which cuts at '&' only), and are decoded as it
    decodes them ('+' and %-escapes, UTF-8 with replacement). A name in ``accepted`` passes
    where Starlette reads it as a parameter (at the start of an '&'-separated pair) and
    exactly so; anywhere else, or spelt otherwise (``Session``), it is refused like any."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")  # as Starlette decodes it
    for pair in query_string.split("&"):
        for position, part in enumerate(_SEPARATOR_RE.split(pair)):
            name = urllib.parse.unquote_plus(part.partition("=")[0], errors="replace")
            if is_credential_name(name) and not (position == 0 and name in accepted):
                return name
    return None


def redact_query(text: str) -> str:
    """``text`` (a path with its query string, or a log line) with the whole query string of a
    request that is refused for a credential shown as [redacted].

    Nothing of such a query is kept: a valid token may hold ';', '?' or '#', so no split into
    pairs can tell where its value ends. A query without a credential is kept as it is."""

    def redact(match: re.Match[str]) -> str:
        return f"?{REDACTED}" if credential_in_query(match["query"]) is not None else match[0]

    return _QUERY_RE.sub(redact, text)


class RedactCredentials(logging.Filter):
    """For the access log (``uvicorn.access``): a query string with a credential as [redacted].

    Only string arguments are rewritten, and the tuple keeps its shape, so uvicorn's access
    formatter (which unpacks the arguments) formats the line as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = _redacted(record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(_redacted(arg) for arg in record.args)
            elif isinstance(record.args, Mapping):
                record.args = {key: _redacted(arg) for key, arg in record.args.items()}
            return True
        except Exception:  # noqa: BLE001 - a filter that raises breaks the request
            # A line that could not be checked is dropped rather than written with a token.
            return False


def _redacted(value: Any) -> Any:
    return redact_query(value) if isinstance(value, str) else value


class RefuseCredentialsInQuery:
    """ASGI middleware: a request with a credential-named query parameter is a 400, answered
    before routing and authentication, naming the parameter and never its value.

    ``accepted`` maps a route's path to the credential-named parameters it takes itself
    (the search's ``session``): those pass on that route only."""

    def __init__(self, app: ASGIApp, accepted: Mapping[str, Collection[str]] | None = None) -> None:
        self.app = app
        self.accepted = {path: frozenset(names) for path, names in (accepted or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            accepted = self.accepted.get(_route_path(scope), frozenset())
            name = credential_in_query(scope.get("query_string", b""), accepted)
            if name is not None:
                response = error_response(CredentialInQueryError(name))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the prefix the app is mounted under."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path
