"""The app's configuration: what runs once Django's settings and models are loaded.

Django applies ``LOGGING`` (``dictConfig``) before any app is ready, so by ``ready()`` the
``audit`` logger may already hold an AuditHandler that ``LOGGING`` declared, or one made
earlier (``configure()`` in ``wsgi.py``) that ``dictConfig`` has closed. ``ready()`` makes the
outcome one rule: **the settings of the Django project win** (the environment, then
``settings.AUDIT_LOGGING``, then ``.env``). Exactly one open AuditHandler with those settings
stays on ``audit``; any other is drained and removed (a warning says so when ``LOGGING``
declared one with other settings).

``LOGGING``'s ``"disable_existing_loggers": True`` (Django's default) disables every logger
that existed before, which can include ``audit`` and the library's own ``audit_logging``
loggers. A disabled ``audit`` logger drops audit records and a disabled ``audit_logging``
logger hides "broker unreachable" and "records lost"; neither can be what a project meant,
so ``ready()`` enables them again, warns, and ``manage.py check`` reports it
(``audit_logging.W003``) until ``LOGGING`` says ``"disable_existing_loggers": False``.
"""

from __future__ import annotations

import logging

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

import audit_logging
from audit_logging.capture import AUDIT_LOGGER, audit_handlers
from audit_logging.errors import ConfigurationError
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings

LIBRARY_LOGGER = "audit_logging"
logger = logging.getLogger(__name__)

# Loggers ready() found disabled and enabled again, for the system check to report.
REENABLED: list[str] = []


class AuditLoggingImproperlyConfigured(ConfigurationError, ImproperlyConfigured):  # noqa: N818
    """A bad setting found when Django starts: catchable as Django's ImproperlyConfigured
    and as the library's ConfigurationError; the message names the setting."""

    def __init__(self, cause: ConfigurationError, where: str = "") -> None:
        Exception.__init__(self, f"{cause}{where}")
        self.setting = cause.setting


class AuditLoggingConfig(AppConfig):
    name = "audit_logging.contrib.django"
    label = "audit_logging"
    verbose_name = "Audit logging"

    def ready(self) -> None:
        # Registers the Django-only options (model capture's too) and the system checks.
        from audit_logging.contrib.django import auth, checks, middleware, registry
        from audit_logging.contrib.django.conf import DJANGO_OPTIONS, django_option

        if _runs_library_command():
            # consume_audit_logs and audit_logs_status read the settings themselves and
            # report a bad one as the plain commands do (exit 2, one line); capture is not
            # theirs to run (its publisher would even create the stream they inspect).
            _ = checks, middleware
            return
        try:
            for key in list(DJANGO_OPTIONS):
                django_option(key)
            # A bad field given to @register in a models.py fails the start, not a save.
            registry.finish_registrations()
            configure_capture()
        except ConfigurationError as exc:
            raise AuditLoggingImproperlyConfigured(exc, _where(exc.setting)) from None
        _ = checks, middleware
        auth.connect()


LIBRARY_COMMANDS = frozenset({"consume_audit_logs", "audit_logs_status"})


def _runs_library_command() -> bool:
    """Whether this process is ``manage.py consume_audit_logs`` or ``audit_logs_status``
    (Django sets its apps up before a command runs, so only the command line can say)."""
    import sys

    return len(sys.argv) > 1 and sys.argv[1] in LIBRARY_COMMANDS


def _where(setting: str) -> str:
    """Where a refused value came from, for the message (the value itself is never shown
    here: it may be a password)."""
    import os

    from audit_logging.contrib.django.conf import DJANGO_SETTING, django_values

    if setting.startswith(DJANGO_SETTING):
        return ""
    if os.environ.get(setting, "").strip():
        return " (from the environment)"
    try:
        given = setting in django_values()
    except ConfigurationError:
        given = False
    return f" (from settings.{DJANGO_SETTING})" if given else ""


def configure_capture(settings: Settings | None = None) -> AuditHandler:
    """One open AuditHandler on ``audit``, with the Django project's settings; the library's
    loggers enabled. Run by ``ready()``; safe to run again (tests do, after changing the
    environment)."""
    from audit_logging.contrib.django.conf import library_settings

    wanted = settings if settings is not None else library_settings()
    audit = logging.getLogger(AUDIT_LOGGER)
    for handler in audit_handlers():
        # A handler dictConfig closed (it closes every handler it finds) can send nothing.
        closed = getattr(handler, "_closed", False)
        if closed or handler.settings != wanted:
            if not closed:
                logger.warning(
                    "An AuditHandler on the 'audit' logger (declared in LOGGING?) has other "
                    "settings than the Django project's (the environment, then "
                    "settings.AUDIT_LOGGING): it is replaced; give settings in AUDIT_LOGGING"
                )
            audit.removeHandler(handler)
            handler.close()
    _enable_library_loggers()
    return audit_logging.configure(settings=wanted)


def _enable_library_loggers() -> None:
    names = [AUDIT_LOGGER, LIBRARY_LOGGER] + [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if name.startswith((AUDIT_LOGGER + ".", LIBRARY_LOGGER + "."))
    ]
    newly: list[str] = []
    for name in names:
        found = logging.Logger.manager.loggerDict.get(name)
        if isinstance(found, logging.Logger) and found.disabled:
            found.disabled = False
            newly.append(name)
    REENABLED.extend(name for name in newly if name not in REENABLED)
    if newly:
        logger.warning(
            "LOGGING disabled the logger(s) %s (\"disable_existing_loggers\": True): enabled "
            "again, since audit records and the library's warnings must not vanish; set "
            "\"disable_existing_loggers\": False in LOGGING",
            ", ".join(repr(name) for name in newly),
        )
