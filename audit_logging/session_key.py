"""How a session key is stored: an HMAC of it by default, never the raw key unless asked."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from audit_logging.settings import Secret

HASH_PREFIX: Final = "hmac-sha256:"


class StoredSessionKey(str):
    """A session key already in its stored form, made by :func:`stored_session_key`.

    Only this type passes through a second time unchanged (the middleware hashes the key,
    then the record is built from the request context). A plain string that merely looks
    hashed, such as a client's cookie ``hmac-sha256:...``, is hashed like any other: a
    client must not choose the value stored as its session.
    """

    __slots__ = ()


def stored_session_key(raw: str | None, mode: str, key: Secret | None) -> str | None:
    """The value to store for session key ``raw`` under AUDIT_LOG_SESSION_KEY_MODE ``mode``.

    In ``hash`` mode without AUDIT_LOG_HASH_KEY the key is dropped (None): storing it raw
    would leak a live credential into the audit trail.
    """
    if raw is None or raw == "" or mode == "drop":
        return None
    if isinstance(raw, StoredSessionKey):
        return raw
    if mode == "raw":
        return raw
    if key is None:
        return None
    digest = hmac.new(
        key.get().encode("utf-8"), raw.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
    return StoredSessionKey(HASH_PREFIX + digest)
