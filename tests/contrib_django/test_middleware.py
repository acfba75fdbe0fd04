"""The Django app's AuditMiddleware in-process (records captured, not published): sync and
async capable, the session as Django's store knows it, proxies trusted only as configured,
and a missing hash key refused when the middleware is made."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction

from audit_logging.errors import ConfigurationError
from audit_logging.testing import capture_audit_records
from tests.contrib_django.conftest import HASH_KEY, PASSWORD


@pytest.fixture
def env(django_db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_LOG_FORWARDED_HEADER", "AUDIT_LOG_SESSION_KEY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDIT_LOG_HASH_KEY", HASH_KEY)


def hashed(raw: str) -> str:
    return "hmac-sha256:" + hmac.new(HASH_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()


def test_sync_and_async_capable(env: None) -> None:
    from django.http import HttpRequest, HttpResponse

    from audit_logging.contrib.django.middleware import AuditMiddleware

    def sync_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    assert AuditMiddleware.sync_capable and AuditMiddleware.async_capable
    assert not iscoroutinefunction(AuditMiddleware(sync_view))
    assert iscoroutinefunction(AuditMiddleware(async_view))


def test_the_session_is_the_one_the_store_knows(env: None, user: Any) -> None:
    from django.test import Client

    logged_in = Client()
    assert logged_in.login(username=user.get_username(), password=PASSWORD)
    live = logged_in.cookies["sessionid"].value
    stale = Client()
    stale.cookies["sessionid"] = "a" * 32  # the format of a key, naming no session

    with capture_audit_records(hash_key=HASH_KEY) as records:
        assert logged_in.get("/auth/orders/o-1/").status_code == 200
        assert stale.get("/auth/orders/o-2/").status_code == 200
    known, unknown = records
    assert (known["session_key"], known["username"]) == (hashed(live), user.get_username())
    assert (unknown["session_key"], unknown["user_id"]) == (None, None)


def test_the_session_of_an_async_request(env: None, user: Any) -> None:
    from django.test import AsyncClient

    client = AsyncClient()
    assert asyncio.run(client.alogin(username=user.get_username(), password=PASSWORD))
    stale = AsyncClient()
    stale.cookies["sessionid"] = "b" * 32

    async def visit() -> None:
        assert (await client.get("/auth/async/orders/o-1/")).status_code == 200
        assert (await stale.get("/auth/async/orders/o-2/")).status_code == 200

    with capture_audit_records(hash_key=HASH_KEY) as records:
        asyncio.run(visit())
    known, unknown = records
    assert known["session_key"] == hashed(client.cookies["sessionid"].value)
    assert known["user_id"] == str(user.pk)
    assert (unknown["session_key"], unknown["user_id"]) == (None, None)


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [
        ("198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),  # not a proxy: its header is not read
        ("10.9.8.7", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.9.8.7", [], "10.9.8.7"),
    ],
)
def test_forwarded_addresses_only_from_trusted_proxies(
    env: None, peer: str, trusted: list[str], expected: str
) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    options = {**settings.AUDIT_LOGGING, "TRUSTED_PROXIES": trusted}
    with override_settings(AUDIT_LOGGING=options), \
            capture_audit_records(hash_key=HASH_KEY) as records:
        Client().get("/auth/orders/o-1/", REMOTE_ADDR=peer,
                     HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5")
    assert records[0]["ip_address"] == expected


def test_the_forwarded_header_setting_is_honoured(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test import Client

    monkeypatch.setenv("AUDIT_LOG_FORWARDED_HEADER", "Forwarded")
    with capture_audit_records(hash_key=HASH_KEY) as records:
        Client().get("/auth/orders/o-1/", REMOTE_ADDR="10.0.0.2",
                     HTTP_X_FORWARDED_FOR="6.6.6.6", HTTP_FORWARDED='for="[2001:db8::9]:443"')
    assert records[0]["ip_address"] == "2001:db8::9"


def test_a_missing_hash_key_is_refused_when_the_middleware_is_made(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.conf import settings
    from django.test import override_settings

    from audit_logging.contrib.django.middleware import AuditMiddleware

    monkeypatch.delenv("AUDIT_LOG_HASH_KEY")
    options = {k: v for k, v in settings.AUDIT_LOGGING.items() if k != "AUDIT_LOG_HASH_KEY"}
    with override_settings(AUDIT_LOGGING=options), \
            pytest.raises(ConfigurationError, match="AUDIT_LOG_HASH_KEY.*AUDIT_LOGGING"):
        AuditMiddleware(lambda request: None)  # type: ignore[arg-type]
    with override_settings(AUDIT_LOGGING={**options, "AUDIT_LOG_SESSION_KEY_MODE": "drop"}):
        AuditMiddleware(lambda request: None)  # type: ignore[arg-type]


def test_hostile_attempted_usernames_are_bounded_and_never_raise(env: None) -> None:
    from django.contrib.auth import authenticate

    with capture_audit_records(hash_key=HASH_KEY) as records:
        assert authenticate(username="mallory\r\nLOGIN ok", password="x") is None
        assert authenticate(username=["not", "a", "string"], password="x") is None
        assert authenticate(password="x") is None  # no username at all
    assert [r["action"] for r in records] == ["LOGIN_FAILED"] * 3
    assert records[0]["username"] == "mallory\r\nLOGIN ok"  # a value, escaped wherever shown
    assert records[1]["username"] == "['not', 'a', 'string']"
    assert records[2]["username"] is None
    for record in records:
        assert "password" not in json.dumps(record)


def test_one_record_per_request_when_asked(env: None) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    rule = {"methods": ["post"], "exclude_prefixes": ["/auth/logout"], "action": "HTTP"}
    options = {**settings.AUDIT_LOGGING, "AUDIT_REQUESTS": rule}
    with override_settings(AUDIT_LOGGING=options), \
            capture_audit_records(hash_key=HASH_KEY) as records:
        client = Client()
        client.post("/auth/orders/o-1/", headers={"X-Request-ID": "req-1"})
        client.get("/auth/orders/o-2/")
        client.post("/auth/no-such-page/")
        client.post("/auth/logout/")
    summary = [(r["action"], r["object_id"], (r["extra"] or {}).get("status_code"))
               for r in records if r["object_type"] not in ("User", "Goodbye")]
    assert summary == [
        ("VIEW", "o-1", None), ("HTTP", "/auth/orders/o-1/", 200),
        ("VIEW", "o-2", None),
        ("HTTP", "/auth/no-such-page/", 404),
    ]
    assert records[1]["request_id"] == "req-1"  # inside the request's context


@pytest.mark.parametrize(
    ("value", "named"),
    [("yes", "AUDIT_LOGGING['AUDIT_REQUESTS']"),
     ({"methods": "POST"}, "AUDIT_LOGGING['AUDIT_REQUESTS']['methods']"),
     ({"action": ""}, "AUDIT_LOGGING['AUDIT_REQUESTS']['action']"),
     ({"paths": ["/"]}, "AUDIT_LOGGING['AUDIT_REQUESTS']")],
)
def test_a_bad_request_rule_names_the_setting(env: None, value: Any, named: str) -> None:
    from django.conf import settings
    from django.test import override_settings

    from audit_logging.contrib.django.middleware import AuditMiddleware

    options = {**settings.AUDIT_LOGGING, "AUDIT_REQUESTS": value}
    with override_settings(AUDIT_LOGGING=options), \
            pytest.raises(ConfigurationError) as refused:
        AuditMiddleware(lambda request: None)  # type: ignore[arg-type]
    assert str(refused.value).startswith(f"Setting {named}:")
