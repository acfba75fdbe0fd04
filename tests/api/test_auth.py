"""Authentication: Bearer tokens from settings, the insecure development switch, and the
authenticator hook with its per-caller visibility filter."""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.api import BearerTokenAuthenticator, Caller, create_app
from audit_logging.api.auth import configured_tokens
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Secret, Settings
from tests.api.conftest import Capture, IndexRecords

SEARCH = "/api/audit-logs/search/"
TOKEN_A = "tok-a-0123456789abcdef"
TOKEN_B = "tok-b-0123456789abcdef"
TOKEN_C = "tok-c-0123456789abcdef"


def offline(**overrides: Any) -> Settings:
    return Settings.load(environ={}, env_file=None, **overrides)


def test_tokens_come_from_the_list_and_the_file(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# ops team\n\n  {TOKEN_B}  \n# {TOKEN_C} revoked\n{TOKEN_C}\n")
    settings = offline(
        AUDIT_LOG_API_TOKENS=f" {TOKEN_A} , ,", AUDIT_LOG_API_TOKENS_FILE=str(tokens_file)
    )
    assert configured_tokens(settings) == [TOKEN_A, TOKEN_B, TOKEN_C]
    assert configured_tokens(offline()) == []


@pytest.mark.parametrize("bad", ["short", "has space inside-0123456789", "tab\tinside-0123456789"])
def test_weak_or_malformed_tokens_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        configured_tokens(offline(api_tokens=bad))
    assert "AUDIT_LOG_API_TOKENS" in str(info.value)
    assert bad not in str(info.value)


def test_a_bad_line_in_the_tokens_file_is_named_by_line(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"{TOKEN_A}\nshort\n")
    with pytest.raises(ConfigurationError, match=r"AUDIT_LOG_API_TOKENS_FILE \(line 2\)") as info:
        configured_tokens(offline(api_tokens_file=str(tokens_file)))
    assert "short" not in str(info.value)


def test_an_unreadable_tokens_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_API_TOKENS_FILE"):
        configured_tokens(offline(api_tokens_file=str(tmp_path / "missing")))


def test_without_any_token_the_app_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_app(offline())
    assert info.value.setting == "AUDIT_LOG_API_TOKENS"
    assert "--insecure-no-auth" in str(info.value)


def test_every_token_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    authenticate = BearerTokenAuthenticator([TOKEN_A, TOKEN_B, TOKEN_C])
    caller = authenticate({"authorization": f"Bearer {TOKEN_A}"})
    assert caller is not None and len(calls) == 3
    assert authenticate({"authorization": "Bearer tok-x-0123456789abcdef"}) is None
    assert len(calls) == 6


def test_each_token_is_a_distinct_caller_that_does_not_reveal_it() -> None:
    authenticate = BearerTokenAuthenticator([TOKEN_A, TOKEN_B])
    a = authenticate({"authorization": f"Bearer {TOKEN_A}"})
    b = authenticate({"authorization": f"bearer   {TOKEN_B} "})
    assert a is not None and b is not None and a.id != b.id
    for caller in (a, b):
        assert TOKEN_A not in repr(caller) and TOKEN_B not in repr(caller)
    assert TOKEN_A not in repr(authenticate)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN_A}",
        f"Token {TOKEN_A}",
        f"Bearer {TOKEN_A}x",
        f"Bearer {TOKEN_A[:-1]}",
        f"Bearer {TOKEN_A} {TOKEN_A}",
        f"{TOKEN_A}",
        "Bearer " + "\u00e9" * 20,
    ],
)
def test_requests_without_a_valid_token_get_401(header: str | None) -> None:
    app = create_app(offline(api_tokens=TOKEN_A))
    # Header octets beyond ASCII arrive as latin-1, as over a real connection.
    headers = {} if header is None else {b"Authorization": header.encode("latin-1")}
    with TestClient(app) as client:
        for path in (SEARCH, "/api/audit-logs/detail/x/", "/api/audit-logs/openapi.json"):
            # The parameter is bad too: authentication is checked first, revealing nothing.
            response = client.get(path, params={"page_size": "0"}, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            error = response.json()["error"]
            assert error["code"] == "unauthorized" and error["field"] is None
            assert TOKEN_A not in response.text


@pytest.mark.services
def test_tokens_from_the_list_and_the_file_both_work(
    api_settings: Settings, tmp_path: Path
) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"{TOKEN_B}\n")
    settings = dataclasses.replace(
        api_settings, api_tokens=Secret(TOKEN_A), api_tokens_file=tokens_file
    )
    with TestClient(create_app(settings)) as client:
        for token in (TOKEN_A, TOKEN_B):
            response = client.get(SEARCH, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
        assert client.get(SEARCH, headers={"Authorization": f"Bearer {TOKEN_C}"}).status_code == 401


@pytest.mark.services
def test_tokens_never_reach_the_logs(
    api_settings: Settings, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    logging.getLogger("audit").addHandler(capture)
    logging.getLogger("audit").setLevel(logging.DEBUG)
    wrong = "wrong-" + token
    with TestClient(create_app(api_settings)) as client:
        client.get(SEARCH, headers={"Authorization": f"Bearer {token}"})
        client.get(SEARCH, headers={"Authorization": f"Bearer {wrong}"})
        client.get(SEARCH, params={"page_size": "0"}, headers={"Authorization": f"Bearer {token}"})
        client.get("/api/audit-logs/detail/x/", headers={"Authorization": f"Bearer {wrong}"})
    assert caplog.records and capture.records
    for record in [*caplog.records, *capture.records]:
        text = record.getMessage() + repr(record.__dict__)
        assert token not in text
        assert wrong not in text


@pytest.mark.services
def test_insecure_no_auth_serves_everyone_and_says_so_loudly(
    api_settings: Settings, caplog: pytest.LogCaptureFixture, audit_capture: Capture
) -> None:
    settings = dataclasses.replace(api_settings, api_tokens=None)
    with caplog.at_level(logging.WARNING, logger="audit_logging.api"):
        app = create_app(settings, allow_no_auth=True)
    assert any("WITHOUT AUTHENTICATION" in r.getMessage() for r in caplog.records)
    with TestClient(app) as client:
        assert client.get(SEARCH).status_code == 200
    assert getattr(audit_capture.records[0], "user_id", None) == "anonymous"


@pytest.mark.services
def test_allow_no_auth_does_not_switch_off_configured_tokens(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings, allow_no_auth=True)) as client:
        assert client.get(SEARCH).status_code == 401


def restricted(headers: Mapping[str, str]) -> Caller | None:
    """A stand-in for a JWT authenticator: the header names a tenant."""
    tenant = headers.get("x-tenant")
    if tenant is None:
        return None
    return Caller(
        id=f"svc-{tenant}", name=f"Service {tenant}", visible_filter={"term": {"source": tenant}}
    )


async def restricted_async(headers: Mapping[str, str]) -> Caller | None:
    return restricted(headers)


@pytest.mark.services
@pytest.mark.parametrize("authenticator", [restricted, restricted_async])
def test_an_authenticator_hook_decides_who_calls_and_what_they_see(
    api_settings: Settings,
    index_records: IndexRecords,
    audit_capture: Capture,
    authenticator: Any,
) -> None:
    billing, shop = index_records(
        [{"action": "UPDATE", "source": "billing"}, {"action": "UPDATE", "source": "shop"}]
    )
    # With a hook, configured tokens are not what authenticates.
    app = create_app(api_settings, authenticator=authenticator)
    with TestClient(app) as client:
        assert client.get(SEARCH).status_code == 401
        as_billing = {"X-Tenant": "billing"}
        body = client.get(SEARCH, headers=as_billing).json()
        assert body["count"] == 1
        assert [r["log_id"] for r in body["results"]] == [billing["log_id"]]
        filtered = client.get(SEARCH, params={"action": "UPDATE"}, headers=as_billing).json()
        assert filtered["count"] == 1
        own = client.get(f"/api/audit-logs/detail/{billing['log_id']}/", headers=as_billing)
        assert own.status_code == 200
        other = client.get(f"/api/audit-logs/detail/{shop['log_id']}/", headers=as_billing)
        assert other.status_code == 404
    assert [getattr(r, "user_id", None) for r in audit_capture.records] == ["svc-billing"] * 4
    assert getattr(audit_capture.records[0], "username", None) == "Service billing"
