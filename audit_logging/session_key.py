"""How a session key is stored: an HMAC of it by default, never the raw key unless asked."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from audit_logging.settings import Secret

HASH_PREFIX: Final = "hmac-sha256:"


def stored_session_key(raw: str | None, mode: str, key: Secret | None) -> str | None:
    """The value to store for session key ``raw`` under AUDIT_LOG_SESSION_KEY_MODE ``mode``.

    Already-hashed values pass through. In ``hash`` mode without AUDIT_LOG_HASH_KEY the key
    is dropped (None): storing it raw would leak a live credential into the audit trail.
    """
    if raw is None or raw == "" or mode == "drop":
        return None
    if mode == "raw" or raw.startswith(HASH_PREFIX):
        return raw
    if key is None:
        return None
    digest = hmac.new(
        key.get().encode("utf-8"), raw.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
    return HASH_PREFIX + digest
