"""A credential in the query string is refused with 400 before authentication, and its value
never reaches the access log of ``python -m audit_logging.api``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from audit_logging.api.credentials import (
    REDACTED,
    RedactCredentials,
    is_credential_name,
    redact_query,
)
from audit_logging.api.params import SEARCH_PARAMETERS
from audit_logging.settings import Settings
from tests.api.conftest import Capture
from tests.api.test_main import environment, serve

SEARCH = "/api/audit-logs/search/"
SECRET = "SECRET-0123456789abcdef"

CREDENTIAL_NAMES = [
    "access_token", "token", "api_key", "apikey", "API-KEY", "X-Api-Key", "key", "auth",
    "authorization", "Authorization", "bearer", "password", "passwd", "secret", "client_secret",
    "jwt", "session", "sessionid", "SESSION_ID", "id_token", "refresh_token", "accessToken",
    "auth.token", "csrf_token",
]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_credential_names_are_recognised(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", [*SEARCH_PARAMETERS, "q", "monkey", "tokens_count", "keys"])
def test_the_api_parameters_and_plain_names_are_not_credentials(name: str) -> None:
    assert not is_credential_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/s/?action=A", "/s/?action=A"),
        (f"/s/?access_token={SECRET}", f"/s/?access_token={REDACTED}"),
        (f"/s/?action=A&token={SECRET}&page_size=5", f"/s/?action=A&token={REDACTED}&page_size=5"),
        (f"/s/?acc%65ss_token={SECRET}", f"/s/?acc%65ss_token={REDACTED}"),
        (f"/s/?api+key={SECRET}", f"/s/?api+key={REDACTED}"),
        (f"/s/?q=a?token={SECRET}", f"/s/?q=a?token={REDACTED}"),
        (f"/s/?a=1;secret={SECRET}=x", f"/s/?a=1;secret={REDACTED}"),
        (f"/s/?pwd={SECRET}&pwd={SECRET}", f"/s/?pwd={REDACTED}&pwd={REDACTED}"),
        ("/s/", "/s/"),
    ],
)
def test_redact_query(text: str, expected: str) -> None:
    assert redact_query(text) == expected


def test_the_filter_keeps_uvicorns_access_arguments_in_shape() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/s/?jwt={SECRET}", "1.1", 400), None,
    )
    assert RedactCredentials().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", f"/s/?jwt={REDACTED}", "1.1", 400)
    assert SECRET not in record.getMessage()


def assert_refused(response: Any, name: str, secret: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["cache-control"] == "no-store"
    error = response.json()["error"]
    assert error["code"] == "credential_in_query"
    assert error["field"] == name
    assert name in error["message"] and "Authorization" in error["message"]
    assert secret not in response.text


@pytest.mark.services
@pytest.mark.parametrize("with_header", [True, False])
def test_a_valid_token_in_the_query_is_refused_before_authentication(
    client: TestClient, token: str, audit_capture: Capture, with_header: bool
) -> None:
    headers = {} if with_header else {"Authorization": ""}
    response = client.get(f"{SEARCH}?access_token={token}", headers=headers)
    assert_refused(response, "access_token", token)
    assert audit_capture.records == []  # refused, so not a read


@pytest.mark.services
@pytest.mark.parametrize(
    ("path", "name"),
    [
        (f"{SEARCH}?action=DELETE&Api-Key={SECRET}", "Api-Key"),
        (f"{SEARCH}?acc%65ss_token={SECRET}", "access_token"),
        (f"/healthz?token={SECRET}", "token"),
        (f"/api/audit-logs/openapi.json?bearer={SECRET}", "bearer"),
        (f"/api/audit-logs/detail/0190d2a4-5b6c-7d8e-9f00-112233445566/?session={SECRET}",
         "session"),
        (f"/no/such/route?password={SECRET}", "password"),
    ],
)
def test_every_route_refuses_a_credential_named_parameter(
    client: TestClient, path: str, name: str
) -> None:
    assert_refused(client.get(path), name, SECRET)


@pytest.mark.services
def test_the_served_api_refuses_it_and_its_access_log_never_shows_it(
    stack_settings: Settings, index_prefix: str, token: str, tmp_path: Path
) -> None:
    env = environment(
        stack_settings, AUDIT_LOG_API_TOKENS=token, OPENSEARCH_INDEX_PREFIX=index_prefix
    )
    auth = {"Authorization": f"Bearer {token}"}
    with serve(env, "--env-file", str(tmp_path / "none.env")) as (base, process):
        refused = httpx.get(f"{base}{SEARCH}?action=DELETE&access_token={token}", timeout=10)
        refused_too = httpx.get(f"{base}{SEARCH}?x_api_key={SECRET}", headers=auth, timeout=10)
        ok = httpx.get(f"{base}{SEARCH}?action=DELETE", headers=auth, timeout=10)
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert_refused(refused, "access_token", token)
    assert_refused(refused_too, "x_api_key", SECRET)
    assert ok.status_code == 200
    assert token not in output and SECRET not in output
    access = [line for line in output.splitlines() if f"GET {SEARCH}" in line]
    assert len(access) == 3, output
    assert f"?action=DELETE&access_token={REDACTED}" in access[0]
    assert f"?x_api_key={REDACTED}" in access[1]
    assert "?action=DELETE HTTP/1.1" in access[2]
