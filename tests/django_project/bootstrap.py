"""Django, set up once per test process with the test project's settings."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_migrated: set[str] = set()


def ensure_django() -> None:
    """Set Django up with ``tests.django_project.settings_in_process`` (once per process),
    without ``DJANGO_SETTINGS_MODULE``: a subprocess a test starts inherits the environment,
    and must not inherit these settings."""
    import importlib

    import django
    from django.apps import apps
    from django.conf import settings

    with _lock:
        if apps.ready:
            return
        if not settings.configured:
            module = importlib.import_module("tests.django_project.settings_in_process")
            settings.configure(**{k: getattr(module, k) for k in dir(module) if k.isupper()})
        django.setup()


def migrate(database: str = "default") -> None:
    """Create the test project's tables in ``database`` (once per process and database)."""
    ensure_django()
    from django.conf import settings
    from django.core.management import call_command

    with _lock:
        if database in _migrated:
            return
        if settings.DATABASES[database]["ENGINE"].endswith("postgresql"):
            _create_postgres_database(settings.DATABASES[database])
        call_command("migrate", database=database, verbosity=0, interactive=False)
        _migrated.add(database)


def _create_postgres_database(config: dict[str, str]) -> None:
    """Create the test database on devstack's PostgreSQL if it is not there yet."""
    import psycopg
    from psycopg import sql

    dsn = f"host={config['HOST']} port={config['PORT']} user={config['USER']} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (config["NAME"],)
        ).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
