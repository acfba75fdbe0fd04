"""Fixtures for the Django app's tests: Django set up in-process with the test project
(tests/django_project), its tables created, capture sent to this test's own stream, and the
model-capture fixtures (importing them sets Django up)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import audit_logging
from audit_logging.settings import Settings
from tests.contrib_django.model_fixtures import db, model_stream, options, records, registered
from tests.django_project.bootstrap import ensure_django, migrate

HASH_KEY = "django-core-hash-key-0123"
PASSWORD = "correct horse battery staple"
SOURCE = "django-core-tests"


@pytest.fixture
def django_db() -> None:
    ensure_django()
    migrate()


@pytest.fixture
def django_capture(
    django_db: None, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    stack_env: dict[str, str],
) -> Iterator[Settings]:
    """The environment of a Django project on the local stack, with this test's stream: the
    app's configure_capture() reads it as ready() does (the environment winning over the
    project's AUDIT_LOGGING); the handler ready() made is set aside meanwhile."""
    from audit_logging.contrib.django.apps import configure_capture

    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RABBITMQ_STREAM_NAME", settings.rabbitmq_stream_name)
    monkeypatch.setenv("AUDIT_LOG_SPOOL_DIR", str(settings.spool_dir))
    monkeypatch.setenv("AUDIT_LOG_HASH_KEY", HASH_KEY)
    monkeypatch.setenv("AUDIT_LOG_SOURCE", SOURCE)  # over the project's AUDIT_LOGGING
    monkeypatch.chdir(settings.spool_dir.parent)  # no stray .env from the work tree
    audit = logging.getLogger("audit")
    saved = list(audit.handlers)
    audit.handlers[:] = []
    configure_capture()
    yield settings
    audit_logging.shutdown(timeout=10)
    audit.handlers[:] = saved


@pytest.fixture
def user(django_db: None) -> Iterator[Any]:
    """A user of this test's own (named after the test process and a counter)."""
    from django.contrib.auth.models import User

    from tests._stack import unique

    created = User.objects.create_user(unique("ada"), password=PASSWORD)
    yield created
    created.delete()


__all__ = ["db", "model_stream", "options", "records", "registered"]
