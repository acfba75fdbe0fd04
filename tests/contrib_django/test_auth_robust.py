"""An auth record that cannot be made never fails the login, logout or authentication it is
about; a session outside any request is stored as the middleware would store it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from audit_logging.errors import RecordError
from audit_logging.testing import capture_audit_records
from tests.contrib_django.conftest import PASSWORD


@pytest.fixture
def no_hash_key(django_db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project without AUDIT_LOG_HASH_KEY (in AUDIT_LOGGING or the environment)."""
    from django.conf import settings

    given = {k: v for k, v in settings.AUDIT_LOGGING.items() if k != "AUDIT_LOG_HASH_KEY"}
    monkeypatch.setattr(settings, "AUDIT_LOGGING", given)
    monkeypatch.delenv("AUDIT_LOG_HASH_KEY", raising=False)


def test_force_login_without_a_hash_key_records_no_session_and_logs_in(
    no_hash_key: None, user: Any
) -> None:
    from django.test import Client

    client = Client()
    with capture_audit_records() as records:
        client.force_login(user)  # raised RecordError (the raw key refused) before
        client.logout()
    assert [r["action"] for r in records] == ["LOGIN", "LOGOUT"]
    assert all(r["session_key"] is None for r in records)
    assert all(r["user_id"] == str(user.pk) for r in records)


def test_a_record_that_cannot_be_made_is_reported_not_raised_into_login(
    django_db: None, user: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.contrib.auth import authenticate
    from django.test import Client

    from audit_logging.contrib.django import auth

    def refuse(**fields: Any) -> str:
        raise RecordError("object_repr", "refused for the test")

    monkeypatch.setattr(auth, "log_audit_event", refuse)
    caplog.set_level(logging.ERROR, logger="audit_logging")
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    assert authenticate(username=user.username, password="wrong") is None
    client.logout()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("audit_logging")]
    assert messages == [
        "The LOGIN audit record could not be made",
        "The LOGIN_FAILED audit record could not be made",
        "The LOGOUT audit record could not be made",
    ]
