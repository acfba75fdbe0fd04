"""System checks (``manage.py check``) for a project that uses the audit logging app.

- ``audit_logging.E001``: session keys are to be hashed and ``AUDIT_LOG_HASH_KEY`` is unset.
- ``audit_logging.E002``: no open AuditHandler on the ``audit`` logger: records go nowhere.
- ``audit_logging.W003``: ``LOGGING`` disabled ``audit`` or the library's own loggers.
- ``audit_logging.W004``: ``audit`` propagates to the root logger's handlers (records in the
  console or the log files).
- ``audit_logging.W005``: Django trusts a proxy's headers, the audit middleware no proxy.
- ``audit_logging.W006``: ``TRUSTED_PROXIES`` trusts every address.
- ``audit_logging.W007``: the middleware comes before ``SessionMiddleware`` or
  ``AuthenticationMiddleware``.
- ``audit_logging.W008``: the middleware is not in ``MIDDLEWARE``.
- ``audit_logging.E000``: a setting of the app has a bad value (``ready()`` refuses it first).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from audit_logging.capture import AUDIT_LOGGER, audit_handlers
from audit_logging.contrib.django.apps import LIBRARY_LOGGER, REENABLED
from audit_logging.contrib.django.conf import DJANGO_SETTING, library_settings
from audit_logging.contrib.django.middleware import (
    MIDDLEWARE_PATH,
    AuditMiddleware,
    trusted_proxies,
    trusts_everyone,
)
from audit_logging.errors import ConfigurationError
from audit_logging.handlers import AuditHandler

TAG = "audit_logging"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
LOGGING_HINT = (
    "In LOGGING, set \"disable_existing_loggers\": False (see the README's Django section)."
)


@register(TAG)
def check_hash_key(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[CheckMessage]:
    try:
        settings = library_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), hint=f"Fix the setting in {DJANGO_SETTING} or the environment.",
                      id="audit_logging.E000")]
    if settings.session_key_mode == "hash" and settings.hash_key is None:
        return [
            Error(
                "AUDIT_LOG_HASH_KEY is not set, and AUDIT_LOG_SESSION_KEY_MODE is hash: the "
                "middleware refuses to start and session keys are dropped from records.",
                hint=f"Set AUDIT_LOG_HASH_KEY (16 characters or more) in the environment or in "
                f"{DJANGO_SETTING}, or set AUDIT_LOG_SESSION_KEY_MODE to drop.",
                id="audit_logging.E001",
            )
        ]
    return []


@register(TAG)
def check_handler(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[CheckMessage]:
    audit = logging.getLogger(AUDIT_LOGGER)
    open_handlers = [h for h in audit_handlers() if not getattr(h, "_closed", False)]
    if open_handlers:
        return []
    others = [type(h).__name__ for h in audit.handlers]
    return [
        Error(
            "The 'audit' logger has no open AuditHandler"
            + (f" (only {', '.join(others)})" if others else " (no handler at all)")
            + ": audit records do not reach the stream.",
            hint="Keep 'audit_logging.contrib.django' in INSTALLED_APPS and do not remove its "
            "handler (audit_logging.shutdown() or LOGGING's handlers for 'audit').",
            id="audit_logging.E002",
        )
    ]


@register(TAG)
def check_loggers(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    disabled = sorted(
        name
        for name, found in logging.Logger.manager.loggerDict.items()
        if isinstance(found, logging.Logger)
        and found.disabled
        and (name in (AUDIT_LOGGER, LIBRARY_LOGGER) or name.startswith(LIBRARY_LOGGER + "."))
    )
    if disabled:
        messages.append(
            Warning(
                f"LOGGING disabled the logger(s) {', '.join(map(repr, disabled))}: audit "
                "records or the library's warnings (broker unreachable, records lost) vanish.",
                hint=LOGGING_HINT,
                id="audit_logging.W003",
            )
        )
    elif REENABLED:
        messages.append(
            Warning(
                f"LOGGING disabled the logger(s) {', '.join(map(repr, REENABLED))} "
                "(\"disable_existing_loggers\" is True, Django's default); the app enabled "
                "them again at start.",
                hint=LOGGING_HINT,
                id="audit_logging.W003",
            )
        )
    audit = logging.getLogger(AUDIT_LOGGER)
    root_handlers = [h for h in logging.getLogger().handlers if not isinstance(h, AuditHandler)]
    if audit.propagate and root_handlers:
        messages.append(
            Warning(
                "The 'audit' logger propagates to the root logger's handlers "
                f"({', '.join(type(h).__name__ for h in root_handlers)}): every audit record "
                "is also written there (console, log files).",
                hint="In LOGGING, give the 'audit' logger \"propagate\": False.",
                id="audit_logging.W004",
            )
        )
    return messages


def _middleware_index(entries: Sequence[str]) -> int | None:
    for index, entry in enumerate(entries):
        if entry == MIDDLEWARE_PATH:
            return index
        try:
            found = import_string(entry)
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, AuditMiddleware):
            return index
    return None


@register(TAG)
def check_middleware(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    entries = list(getattr(django_settings, "MIDDLEWARE", None) or [])
    ours = _middleware_index(entries)
    if ours is None:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: audit records carry no IP address, "
                "user agent, session, user or request id.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE after {AUTH_MIDDLEWARE!r}.",
                id="audit_logging.W008",
            )
        ]
    messages: list[CheckMessage] = []
    for needed in (SESSION_MIDDLEWARE, AUTH_MIDDLEWARE):
        if needed in entries and entries.index(needed) > ours:
            messages.append(
                Warning(
                    f"MIDDLEWARE lists {MIDDLEWARE_PATH} before {needed}: records miss the "
                    + ("session." if needed == SESSION_MIDDLEWARE else "user."),
                    hint=f"Move {MIDDLEWARE_PATH!r} after {needed!r} in MIDDLEWARE.",
                    id="audit_logging.W007",
                )
            )
    return messages


@register(TAG)
def check_proxies(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[CheckMessage]:
    try:
        proxies = trusted_proxies()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Fix the setting.", id="audit_logging.E000")]
    messages: list[CheckMessage] = []
    django_trusts = [
        name
        for name in ("USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT", "SECURE_PROXY_SSL_HEADER")
        if getattr(django_settings, name, None)
    ]
    if django_trusts and not proxies:
        messages.append(
            Warning(
                f"{', '.join(django_trusts)} say(s) the site runs behind a proxy, but "
                f"{DJANGO_SETTING}['TRUSTED_PROXIES'] is empty: every record holds the "
                "proxy's address instead of the client's.",
                hint=f"Set {DJANGO_SETTING}['TRUSTED_PROXIES'] to your proxies' addresses or "
                "networks (and AUDIT_LOG_FORWARDED_HEADER to the header they write).",
                id="audit_logging.W005",
            )
        )
    if proxies and trusts_everyone(proxies):
        messages.append(
            Warning(
                f"{DJANGO_SETTING}['TRUSTED_PROXIES'] trusts every address: any client can "
                "write the IP address its records hold.",
                hint="List only your proxies' addresses or networks.",
                id="audit_logging.W006",
            )
        )
    return messages
