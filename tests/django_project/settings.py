"""The test project's settings. The database is SQLite unless ``DJANGO_TEST_DATABASE`` is
``postgres`` (devstack's PostgreSQL on 127.0.0.1:5433, started by ``make services``); the
``postgres`` alias points there in either case, so in-process tests can use both."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "django-test-project-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.django_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "audit_logging.contrib.django",
    "tests.django_project.shop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit_logging.contrib.django.middleware.AuditMiddleware",
]

_SQLITE = os.environ.get(
    "DJANGO_TEST_SQLITE", str(Path(tempfile.gettempdir()) / f"django-test-{os.getpid()}.sqlite3")
)
_POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ.get("DJANGO_TEST_POSTGRES_DB", "audit_logging_django_tests"),
    "USER": "postgres",
    "HOST": "127.0.0.1",
    "PORT": os.environ.get("POSTGRES_DEVSTACK_PORT", "5433"),
}
DATABASES = {
    "default": (
        _POSTGRES
        if os.environ.get("DJANGO_TEST_DATABASE") == "postgres"
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": _SQLITE}
    ),
    "postgres": _POSTGRES,
}

# The library's settings, as a Django project gives them; the environment wins where set
# (the tests point it at the local stack and their own stream).
AUDIT_LOGGING: dict[str, object] = {
    "AUDIT_LOG_SOURCE": "django-test-project",
    # Not a secret: a test project's key (the middleware needs one to hash session keys).
    "AUDIT_LOG_HASH_KEY": "django-test-project-hash-key",
    "TRUSTED_PROXIES": ["10.0.0.0/8"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "audit_logging": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "audit": {"level": "INFO", "propagate": False},
    },
}
