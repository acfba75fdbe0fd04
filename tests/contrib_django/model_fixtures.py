"""Fixtures for model-change capture: Django set up in-process with the test project, its
tables emptied on SQLite ("default") and devstack's PostgreSQL ("postgres"), the shop's
models registered for the test and unregistered after it.

Imported by the test modules (first, so Django is set up before they import models)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import audit_logging
from audit_logging.settings import Settings
from tests.django_project.bootstrap import ensure_django, migrate

DATABASES = ["default", "postgres"]

ensure_django()


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> str:
    """A database alias of the test project, its shop tables empty."""
    alias: str = request.param
    migrate(alias)
    from tests.django_project.shop.models import Customer, Invoice, Order, Tag

    # Children first; _raw_delete sends no signals, so nothing here is recorded.
    for model in (Order, Invoice, Customer.tags.through, Customer, Tag):
        queryset: Any = model._base_manager.using(alias).all()
        queryset._raw_delete(alias)
    return alias


@pytest.fixture
def registered() -> Iterator[None]:
    """The shop's models registered as an app would register them."""
    ensure_django()
    from audit_logging.contrib.django import register, unregister
    from tests.django_project.shop.models import Customer, Invoice, Order, Tag

    models = (Customer, Order, Tag, Invoice)
    register(Customer, mask_fields=["api_secret"])
    register(Order)
    register(Tag)
    register(Invoice)
    yield
    for model in models:
        unregister(model)


@pytest.fixture
def records(registered: None) -> Iterator[list[dict[str, Any]]]:
    """What the registered models record during the test (setup included: clear it), kept
    in memory: nothing reaches a broker."""
    from audit_logging.testing import capture_audit_records

    with capture_audit_records() as captured:
        yield captured


@pytest.fixture
def options(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """``settings.AUDIT_LOGGING`` for this test: set keys, they are read at each write."""
    ensure_django()
    from django.conf import settings

    given: dict[str, object] = dict(settings.AUDIT_LOGGING)
    monkeypatch.setattr(settings, "AUDIT_LOGGING", given)
    return given


@pytest.fixture
def model_stream(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, stack_env: dict[str, str]
) -> Iterator[Settings]:
    """The environment of an app on the local stack, publishing to this test's stream."""
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RABBITMQ_STREAM_NAME", settings.rabbitmq_stream_name)
    monkeypatch.setenv("AUDIT_LOG_SPOOL_DIR", str(settings.spool_dir))
    monkeypatch.setenv("AUDIT_LOG_HASH_KEY", "model-stream-hash-key-0123456789")
    monkeypatch.chdir(settings.spool_dir.parent)  # no stray .env from the work tree
    # A handler the app made at start (ready()) is set aside: this test's own is used.
    audit = logging.getLogger("audit")
    saved = list(audit.handlers)
    audit.handlers[:] = []
    audit_logging.configure()
    yield settings
    audit_logging.shutdown(timeout=10)
    audit.handlers[:] = saved
