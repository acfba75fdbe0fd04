"""Who is calling: the ``Caller``, the authenticator hook, and the Bearer-token default.

An authenticator takes the request headers and returns a :class:`Caller`, or ``None`` for
401. It may be a plain or an ``async`` callable, so a JWT authenticator that fetches keys
can await them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Awaitable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings

MIN_TOKEN_LENGTH: Final = 16
TOKENS_SETTING: Final = "AUDIT_LOG_API_TOKENS"
TOKENS_FILE_SETTING: Final = "AUDIT_LOG_API_TOKENS_FILE"


@dataclasses.dataclass(frozen=True)
class Caller:
    """An authenticated caller, as the read audit records name them.

    ``visible_filter`` is an OpenSearch query clause (for example
    ``{"term": {"source": "billing"}}``) added to every search and detail lookup this caller
    makes; ``None`` lets them see every record.
    """

    id: str
    name: str | None = None
    visible_filter: Mapping[str, Any] | None = None


class Authenticator(Protocol):
    def __call__(
        self, headers: Mapping[str, str], /
    ) -> Caller | Awaitable[Caller | None] | None:
        """The caller these headers authenticate, or ``None`` (answered with 401).

        ``headers`` looks names up case-insensitively. Raising is a server error (500),
        so return ``None`` for any credential that does not check out."""


class BearerTokenAuthenticator:
    """``Authorization: Bearer <token>`` against a fixed set of tokens, in constant time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        # Digests, not tokens, are kept and compared: every comparison then has the same
        # length, and no token sits in this object for a debugger or a repr to show.
        self._digests = tuple(_digest(token) for token in tokens)
        if not self._digests:
            raise ConfigurationError(TOKENS_SETTING, "has no token")

    def __repr__(self) -> str:
        return f"BearerTokenAuthenticator(<{len(self._digests)} tokens>)"

    def __call__(self, headers: Mapping[str, str]) -> Caller | None:
        presented = bearer_token(headers)
        if presented is None:
            return None
        digest = _digest(presented)
        matched: bytes | None = None
        # Compare against every token, without stopping early, so timing tells nothing
        # about which (or whether any) token matched.
        for known in self._digests:
            if hmac.compare_digest(digest, known):
                matched = known
        if matched is None:
            return None
        # A short digest prefix tells tokens apart in the audit trail; the tokens are long
        # random strings (at least MIN_TOKEN_LENGTH), so it reveals nothing usable.
        fingerprint = matched.hex()[:12]
        return Caller(id=f"api-token:{fingerprint}", name=f"API token {fingerprint}")


# Why a request was refused, as the auth failures metric counts it: a fixed set, whatever the
# request holds. "rejected" is a well-formed credential the authenticator did not accept.
MISSING: Final = "missing"
MALFORMED: Final = "malformed"
REJECTED: Final = "rejected"
FAILURE_REASONS: Final = (MISSING, MALFORMED, REJECTED)


def failure_reason(headers: Mapping[str, str]) -> str:
    """Why these headers authenticated no caller (one of :data:`FAILURE_REASONS`), judged by
    their ``Authorization`` header: none, not ``Bearer <token>``, or a token refused."""
    if "authorization" not in headers:
        return MISSING
    return MALFORMED if bearer_token(headers) is None else REJECTED


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def configured_tokens(settings: Settings) -> list[str]:
    """Tokens from ``api_tokens`` (comma-separated) and ``api_tokens_file`` (one per line)."""
    tokens: list[str] = []
    if settings.api_tokens is not None:
        for token in settings.api_tokens.get().split(","):
            if token.strip():
                tokens.append(_checked(TOKENS_SETTING, token.strip()))
    if settings.api_tokens_file is not None:
        tokens.extend(_read_tokens_file(settings.api_tokens_file))
    return tokens


def _read_tokens_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigurationError(
            TOKENS_FILE_SETTING, f"cannot read {str(path)!r}: {reason}"
        ) from None
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if token and not token.startswith("#"):
            tokens.append(_checked(f"{TOKENS_FILE_SETTING} (line {number})", token))
    return tokens


def _checked(setting: str, token: str) -> str:
    # Messages say what is wrong, never the token.
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            setting, f"each token must be at least {MIN_TOKEN_LENGTH} characters long"
        )
    if not all("\x21" <= ch <= "\x7e" for ch in token) or "," in token:
        raise ConfigurationError(
            setting, "a token may hold only printable ASCII characters other than ','"
        )
    return token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
