"""The test project's settings, misconfigured one way per ``DJCORE_CHECK_CASE`` (run by
``manage.py check`` in a subprocess: tests/contrib_django/test_checks.py)."""

from __future__ import annotations

import os

from django.apps import AppConfig

from tests.django_project.settings import *  # noqa: F403
from tests.django_project.settings import AUDIT_LOGGING, INSTALLED_APPS, LOGGING, MIDDLEWARE

CASE = os.environ.get("DJCORE_CHECK_CASE", "clean")
AUDIT = "audit_logging.contrib.django.middleware.AuditMiddleware"


class UnhookConfig(AppConfig):
    """An app that removes the audit handler once the app has attached it."""

    name = "tests.django_project"
    label = "djcore_unhook"

    def ready(self) -> None:
        import audit_logging

        audit_logging.shutdown(timeout=1)


AUDIT_LOGGING = dict(AUDIT_LOGGING)
LOGGING = dict(LOGGING)
if CASE == "no_hash_key":
    del AUDIT_LOGGING["AUDIT_LOG_HASH_KEY"]
elif CASE == "no_handler":
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.django_project.settings_djcore_checks.UnhookConfig"]
elif CASE == "disable_existing_loggers":
    # As a project whose settings (or wsgi.py, or gunicorn --preload) imported the library
    # before Django applied LOGGING: its loggers exist, and dictConfig disables them.
    import audit_logging.middleware

    LOGGING = {"version": 1, "disable_existing_loggers": True}
elif CASE == "configured_before_setup":
    # The old recipe: configure() in wsgi.py before Django starts; dictConfig closes it.
    import audit_logging

    audit_logging.configure(source="configured-in-wsgi", hash_key="wsgi-hash-key-0123456")
elif CASE == "handler_in_logging":
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"audit": {"class": "audit_logging.handlers.AuditHandler",
                               "source": "declared-in-logging", "env_file": None}},
        "loggers": {"audit": {"handlers": ["audit"], "level": "INFO", "propagate": False}},
    }
elif CASE == "propagate":
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "root": {"handlers": ["console"], "level": "INFO"},
    }
elif CASE == "proxy_mismatch":
    AUDIT_LOGGING["TRUSTED_PROXIES"] = []
    USE_X_FORWARDED_HOST = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
elif CASE == "trust_everyone":
    AUDIT_LOGGING["TRUSTED_PROXIES"] = ["10.0.0.0/8", "0.0.0.0/0"]
elif CASE == "middleware_order":
    MIDDLEWARE = [AUDIT, *[entry for entry in MIDDLEWARE if entry != AUDIT]]
elif CASE == "no_middleware":
    MIDDLEWARE = [entry for entry in MIDDLEWARE if entry != AUDIT]
elif CASE == "bad_library_value":
    AUDIT_LOGGING["AUDIT_LOG_BATCH_SIZE"] = "lots"
elif CASE == "bad_proxy":
    AUDIT_LOGGING["TRUSTED_PROXIES"] = ["10.0.0.0/8", "proxy.internal"]
elif CASE == "unknown_key":
    AUDIT_LOGGING["RABBITMQ_STREAM_HOSTNAME"] = "mq"
elif CASE == "not_a_dict":
    AUDIT_LOGGING = ["AUDIT_LOG_SOURCE=x"]  # type: ignore[assignment]
elif CASE != "clean":
    raise ValueError(f"unknown DJCORE_CHECK_CASE {CASE!r}")
