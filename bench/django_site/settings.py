"""Settings of the benchmark's Django project; ``BENCH_DJANGO_VARIANT`` picks what audits the
view's model change:

* ``none``: nothing (the baseline);
* ``auditlog``: django-auditlog (its app, middleware and ``auditlog.register``), writing its
  ``LogEntry`` rows to the app's database;
* ``ours``: this library's Django app, middleware and ``register`` (model-change capture);
* ``wsgi``: this library without its Django app: ``AuditWSGIMiddleware`` around the WSGI
  application and a ``log_audit_event`` call in the view;
* ``migrate``: every app installed, for creating the tables once.

The database is devstack's PostgreSQL (``BENCH_DJANGO_DB`` names it); the library's settings
come from the environment the benchmark gives the server.
"""

from __future__ import annotations

import os
from typing import Final

VARIANTS: Final = ("none", "auditlog", "ours", "wsgi", "migrate")
VARIANT: Final = os.environ.get("BENCH_DJANGO_VARIANT", "none")
if VARIANT not in VARIANTS:
    raise RuntimeError(f"BENCH_DJANGO_VARIANT: {VARIANT!r} is not one of {VARIANTS}")

SECRET_KEY = "bench-django-site-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "bench.django_site.urls"
WSGI_APPLICATION = "bench.django_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "bench.django_site",
]
# A project's usual stack; each audit variant adds its own after authentication, as its
# documentation says, so that it sees request.user.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
if VARIANT in ("auditlog", "migrate"):
    INSTALLED_APPS.append("auditlog")
if VARIANT == "auditlog":
    MIDDLEWARE.append("auditlog.middleware.AuditlogMiddleware")
if VARIANT in ("ours", "migrate"):
    INSTALLED_APPS.append("audit_logging.contrib.django")
if VARIANT == "ours":
    MIDDLEWARE.append("audit_logging.contrib.django.middleware.AuditMiddleware")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DJANGO_DB", "bench_django"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("POSTGRES_DEVSTACK_PORT", "5433"),
        # Persistent connections, as production settings have: a connection per request
        # would cost more than either audit library and hide the difference.
        "CONN_MAX_AGE": None,
    }
}

# The library's warnings (a broker unreachable, records spooled) reach the server's stderr,
# which the benchmark keeps in its log.
LOGGING = {"version": 1, "disable_existing_loggers": False}
