"""Logins, logouts and failed logins through Django's test clients, read back from the real
stream: each record names the right user and carries the request's IP address, user agent,
session (hashed) and request id."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest

import audit_logging
from audit_logging.settings import Settings
from tests._stack import stream_records
from tests.contrib_django.conftest import HASH_KEY, PASSWORD, SOURCE

pytestmark = pytest.mark.services


def hashed(raw: str) -> str:
    return "hmac-sha256:" + hmac.new(HASH_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()


def read_back(settings: Settings, count: int) -> list[dict[str, Any]]:
    assert audit_logging.flush(timeout=30) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, count)
    assert len(records) == count, [r["action"] for r in records]
    return records


def test_login_logout_and_failure_carry_the_request_and_the_right_user(
    django_capture: Settings, user: Any
) -> None:
    from django.test import Client

    # The peer is a trusted proxy (the project trusts 10.0.0.0/8): the client is its hop.
    client = Client(REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="django-test/1.0",
                    HTTP_X_FORWARDED_FOR="203.0.113.9")
    name = user.get_username()

    refused = client.post("/auth/login/", {"username": name, "password": "wrong-password"},
                          headers={"X-Request-ID": "req-failed"})
    assert refused.status_code == 401
    assert refused["X-Request-ID"] == "req-failed"
    assert client.post("/auth/login/", {"username": name, "password": PASSWORD},
                       headers={"X-Request-ID": "req-login"}).status_code == 200
    session_after_login = client.session.session_key
    assert session_after_login
    assert client.get("/auth/orders/o-7/", headers={"X-Request-ID": "req-order"}).status_code == 200
    assert client.post("/auth/logout/", headers={"X-Request-ID": "req-logout"}).status_code == 200

    records = read_back(django_capture, 6)
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("LOGIN_FAILED", "User"), ("LOGIN", "User"), ("VIEW", "Dashboard"),
        ("VIEW", "Order"), ("LOGOUT", "User"), ("VIEW", "Goodbye"),
    ]
    failed, login, dashboard, order, logout, goodbye = records
    for record in records:
        assert record["ip_address"] == "203.0.113.9"
        assert record["user_agent"] == "django-test/1.0"
        assert record["source"] == SOURCE  # the environment wins over AUDIT_LOGGING
        assert PASSWORD not in json.dumps(record) and "wrong-password" not in json.dumps(record)
    assert [r["request_id"] for r in records] == [
        "req-failed", "req-login", "req-login", "req-order", "req-logout", "req-logout"]

    # A failure names the username tried, and no user (the attempt is anonymous).
    assert (failed["user_id"], failed["username"], failed["object_repr"]) == (None, name, name)
    assert failed["session_key"] is None  # no session yet
    # The login, and what the view logs after login(), are by the new user, in the session
    # Django cycled to (the key the client holds from now on).
    ident = (str(user.pk), name)
    for record in (login, dashboard, order, logout):
        assert (record["user_id"], record["username"]) == ident, record["action"]
        assert record["session_key"] == hashed(session_after_login), record["action"]
    assert (login["object_id"], login["object_repr"]) == ident
    assert (logout["object_id"], logout["object_repr"]) == ident
    # After logout() the request has neither user nor session.
    assert (goodbye["user_id"], goodbye["username"], goodbye["session_key"]) == (None, None, None)


def test_login_in_an_async_view(django_capture: Settings, user: Any) -> None:
    from django.test import AsyncClient

    client = AsyncClient()
    name = user.get_username()
    headers = {"User-Agent": "django-async/2.0", "X-Request-ID": "req-async"}

    async def visit() -> tuple[int, int, str | None]:
        login = await client.post("/auth/async/login/", {"username": name, "password": PASSWORD},
                                  headers=headers)
        order = await client.get("/auth/async/orders/o-9/", headers=headers)
        return login.status_code, order.status_code, order["X-Request-ID"]

    assert asyncio.run(visit()) == (200, 200, "req-async")
    session = client.cookies["sessionid"].value
    records = read_back(django_capture, 3)
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("LOGIN", "User"), ("VIEW", "AsyncDashboard"), ("VIEW", "AsyncOrder")]
    for record in records:
        assert (record["user_id"], record["username"]) == (str(user.pk), name)
        assert record["session_key"] == hashed(session)
        assert record["ip_address"] == "127.0.0.1"  # AsyncClient's peer
        assert record["user_agent"] == "django-async/2.0"
        assert record["request_id"] == "req-async"


def test_a_failed_login_outside_a_request(django_capture: Settings, user: Any) -> None:
    """A management command calling authenticate(): no request, the username still named,
    cut to the record's limit when a client sends a huge one."""
    from django.contrib.auth import authenticate

    assert authenticate(username=user.get_username(), password="nope") is None
    assert authenticate(username="x" * 100_000, password="nope") is None
    first, huge = read_back(django_capture, 2)
    assert (first["action"], first["username"], first["user_id"]) == (
        "LOGIN_FAILED", user.get_username(), None)
    for field in ("ip_address", "session_key", "request_id", "user_agent"):
        assert first[field] is None, field
    assert huge["username"] == "x" * 256
    assert "username" in huge["truncated"]
