"""``LOGIN``, ``LOGOUT`` and ``LOGIN_FAILED`` records from ``django.contrib.auth``'s signals.

Each record names the user it is about (``object_type`` "User"): the one logging in or out,
or for a failure the username that was tried (from the credentials Django passes, never the
password; bounded). Inside a request the records also carry the request's context, and the
context follows the login: after ``login()`` later records of the request carry the new user
and the session Django cycled to; after ``logout()`` they carry neither. Outside a request (a
management command calling ``authenticate``) the records carry what the signal gives.
"""

from __future__ import annotations

from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from audit_logging.capture import log_audit_event
from audit_logging.context import bind_user, current_context
from audit_logging.contrib.django.conf import library_settings
from audit_logging.contrib.django.middleware import (
    session_key_of,
    stored_session,
    user_identity,
)
from audit_logging.record import STRING_LIMITS

OBJECT_TYPE: Final = "User"
# An attempted username is the client's text: cut before it is copied anywhere.
MAX_ATTEMPTED_USERNAME: Final = STRING_LIMITS["username"]
_UID_PREFIX: Final = "audit_logging.contrib.django.auth."


def connect() -> None:
    """Connect the receivers (idempotent: each has a dispatch_uid)."""
    user_logged_in.connect(logged_in, dispatch_uid=_UID_PREFIX + "login")
    user_logged_out.connect(logged_out, dispatch_uid=_UID_PREFIX + "logout")
    user_login_failed.connect(login_failed, dispatch_uid=_UID_PREFIX + "failed")


def disconnect() -> None:
    user_logged_in.disconnect(dispatch_uid=_UID_PREFIX + "login")
    user_logged_out.disconnect(dispatch_uid=_UID_PREFIX + "logout")
    user_login_failed.disconnect(dispatch_uid=_UID_PREFIX + "failed")


def _session_fields(request: Any) -> dict[str, Any]:
    """The request's current session (after login, the key Django cycled to): put into the
    bound context, so this record and the request's later ones carry it; outside the
    middleware, given to the record as its raw key (capture stores it as the session mode
    says)."""
    raw = session_key_of(request)
    context = current_context()
    if context is None:
        return {"session_key": raw} if raw is not None else {}
    # Stored as the middleware stored the request's first key: from the Django settings.
    context.session_key = stored_session(request, library_settings()) if raw else None
    return {}


def logged_in(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    identity = user_identity(user) or (None, None)
    fields = _session_fields(request) if request is not None else {}
    # Records logged later in this request are by the user who just logged in.
    bind_user(*identity)
    log_audit_event(
        action="LOGIN",
        object_type=OBJECT_TYPE,
        object_id=identity[0],
        object_repr=identity[1],
        user_id=identity[0],
        username=identity[1],
        **fields,
    )


def logged_out(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    # Sent before Django flushes the session: the key is the session that ends.
    identity = user_identity(user) or (None, None)
    raw = session_key_of(request) if request is not None else None
    log_audit_event(
        action="LOGOUT",
        object_type=OBJECT_TYPE,
        object_id=identity[0],
        object_repr=identity[1],
        user_id=identity[0],
        username=identity[1],
        **({"session_key": raw} if raw is not None and current_context() is None else {}),
    )
    bind_user(None, None)
    context = current_context()
    if context is not None:
        context.session_key = None


def attempted_username(credentials: Any) -> str | None:
    """The username a failed login tried, from Django's (already cleansed) credentials."""
    if not isinstance(credentials, dict):
        return None
    field = getattr(get_user_model(), "USERNAME_FIELD", "username")
    value = credentials.get(field, credentials.get("username"))
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    # One character over the limit: the record cuts it and lists "username" as truncated.
    return text[: MAX_ATTEMPTED_USERNAME + 1] or None


def login_failed(sender: Any, credentials: Any = None, request: Any = None, **_: Any) -> None:
    username = attempted_username(credentials)
    fields = {}
    if request is not None and current_context() is None:
        raw = session_key_of(request)
        if raw is not None:
            fields["session_key"] = raw
    # user_id=None: the attempt is anonymous, whoever the session belongs to; the name
    # tried is the username (so a search by username finds the failures too).
    log_audit_event(
        action="LOGIN_FAILED",
        object_type=OBJECT_TYPE,
        object_repr=None if username is None else username[:MAX_ATTEMPTED_USERNAME],
        user_id=None,
        username=username,
        **fields,
    )
