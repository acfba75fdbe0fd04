"""A credential in the query string is refused with 400 before authentication, and its value
never reaches the access log of ``python -m audit_logging.api``."""

from __future__ import annotations

import http.client
import json
import logging
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from starlette.testclient import TestClient

from audit_logging.api.credentials import (
    REDACTED,
    RedactCredentials,
    credential_in_query,
    is_credential_name,
    redact_query,
)
from audit_logging.api.params import SEARCH_PARAMS
from audit_logging.settings import Settings
from tests.api.conftest import Capture
from tests.api.test_main import environment, serve

SEARCH = "/api/audit-logs/search/"
SECRET = "SECRET-0123456789abcdef"
TAIL = "SECRETTAIL"

CREDENTIAL_NAMES = [
    "access_token", "token", "api_key", "apikey", "API-KEY", "X-Api-Key", "key", "auth",
    "authorization", "Authorization", "bearer", "password", "passwd", "secret", "client_secret",
    "jwt", "session", "sessionid", "SESSION_ID", "id_token", "refresh_token", "accessToken",
    "auth.token", "csrf_token",
]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_credential_names_are_recognised(name: str) -> None:
    assert is_credential_name(name)


# Every search parameter but the session filter, which takes a session key on purpose.
PLAIN_PARAMETERS = [param.name for param in SEARCH_PARAMS if not param.secret]


@pytest.mark.parametrize("name", [*PLAIN_PARAMETERS, "q", "monkey", "tokens_count", "keys"])
def test_the_api_parameters_and_plain_names_are_not_credentials(name: str) -> None:
    assert not is_credential_name(name)


def test_the_session_filter_is_the_one_credential_named_parameter() -> None:
    # Named like a credential, so the access log redacts a query that holds it; accepted on
    # the search route only (tests/api/test_search_filters.py).
    assert [p.name for p in SEARCH_PARAMS if is_credential_name(p.name)] == ["session"]
    assert [p.name for p in SEARCH_PARAMS if p.secret] == ["session"]


# Queries with a credential-named parameter, wherever it hides: the whole query string is
# redacted, since any part of it may be the end of a token (a valid token may hold ';', '?').
QUERIES_WITH_A_CREDENTIAL = [
    (f"access_token={SECRET}", "access_token"),
    (f"action=A&token={SECRET}&page_size=5", "token"),
    (f"acc%65ss_token={SECRET}", "access_token"),
    (f"api+key={SECRET}", "api key"),
    (f"access_token={SECRET};{TAIL}", "access_token"),
    (f"access_token={SECRET}?{TAIL}", "access_token"),
    (f"access_token={SECRET}#{TAIL}", "access_token"),
    (f"access_token={SECRET}%3B{TAIL}", "access_token"),
    (f"access_token={SECRET}%3F{TAIL}&action=A", "access_token"),
    (f"access_token={SECRET};{TAIL}=x;y", "access_token"),
    (f"limit=5;access_token={SECRET}", "access_token"),
    (f"limit=5?access_token={SECRET}", "access_token"),
    (f"limit=5#access_token={SECRET}", "access_token"),
    (f"q=a?token={SECRET}", "token"),
    (f"a=1;secret={SECRET}=x", "secret"),
    (f"pwd={SECRET}&pwd={SECRET};{TAIL}", "pwd"),
    (f"action=A&action=B&jwt={SECRET}&jwt={SECRET}?{TAIL}", "jwt"),
    ("action=A&bearer", "bearer"),
    (f"action=A;x%2Dapi%2Dkey={SECRET}", "x-api-key"),
]
QUERIES_WITHOUT = [
    "action=A",
    "action=A&page_size=5;limit=3",
    "q=a?b=c#d",
    "q=token",  # a value, not a name
    "q=a%3Btoken%3Dx",  # encoded separators are part of the value: no parameter 'token'
    "monkey=1&keys=2",
    "",
]


@pytest.mark.parametrize(("query", "name"), QUERIES_WITH_A_CREDENTIAL)
def test_a_credential_named_parameter_is_found_after_any_separator(query: str, name: str) -> None:
    assert credential_in_query(query.encode("latin-1")) == name


@pytest.mark.parametrize("query", QUERIES_WITHOUT)
def test_plain_queries_have_no_credential(query: str) -> None:
    assert credential_in_query(query.encode("latin-1")) is None


@pytest.mark.parametrize(("query", "name"), QUERIES_WITH_A_CREDENTIAL)
def test_the_whole_query_string_of_a_refused_request_is_redacted(query: str, name: str) -> None:
    redacted = redact_query(f"/s/?{query}")
    assert redacted == f"/s/?{REDACTED}"
    assert SECRET not in redacted and TAIL not in redacted


@pytest.mark.parametrize("query", QUERIES_WITHOUT)
def test_a_query_without_a_credential_is_logged_unchanged(query: str) -> None:
    assert redact_query(f"/s/?{query}") == f"/s/?{query}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/s/", "/s/"),
        ("/s/?", "/s/?"),
        # An already formatted line: the query ends at the space, the rest is kept.
        (
            f'"GET /s/?a=1;token={SECRET};{TAIL} HTTP/1.1" 400',
            f'"GET /s/?{REDACTED} HTTP/1.1" 400',
        ),
        (
            f"/a/?token={SECRET} then /b/?action=A",
            f"/a/?{REDACTED} then /b/?action=A",
        ),
    ],
)
def test_redact_query(text: str, expected: str) -> None:
    assert redact_query(text) == expected


def test_the_filter_keeps_uvicorns_access_arguments_in_shape() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/s/?jwt={SECRET};{TAIL}", "1.1", 400), None,
    )
    assert RedactCredentials().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", f"/s/?{REDACTED}", "1.1", 400)
    assert SECRET not in record.getMessage() and TAIL not in record.getMessage()


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
        (f"{SEARCH}?limit=5;access_token={SECRET}", "access_token"),
        (f"{SEARCH}?action=A?api_key={SECRET}", "api_key"),
        (f"{SEARCH}?action=A&action=B;client_secret={SECRET}", "client_secret"),
    ],
)
def test_every_route_refuses_a_credential_named_parameter(
    client: TestClient, path: str, name: str
) -> None:
    assert_refused(client.get(path), name, SECRET)


def raw_get(base: str, target: str) -> tuple[int, str]:
    """``GET target`` sent byte for byte (no client normalises ';', '?', '#' or '%3B')."""
    host, _, port = base.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# Request targets whose query holds a credential (and more of it after a separator), the
# name the 400 names, and nothing of them may reach the server's output.
SERVED_REFUSALS = [
    (f"{SEARCH}?access_token={SECRET};{TAIL}", "access_token"),
    (f"{SEARCH}?access_token={SECRET}?{TAIL}", "access_token"),
    (f"{SEARCH}?access_token={SECRET}%3B{TAIL}", "access_token"),
    (f"{SEARCH}?action=A&jwt={SECRET}#{TAIL}", "jwt"),
    (f"{SEARCH}?limit=5;access_token={SECRET}&x={TAIL}", "access_token"),
    (f"{SEARCH}?pwd={SECRET}&pwd={SECRET};{TAIL}", "pwd"),
]


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
        raw = [raw_get(base, target) for target, _ in SERVED_REFUSALS]
        ok = httpx.get(f"{base}{SEARCH}?action=DELETE", headers=auth, timeout=10)
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert_refused(refused, "access_token", token)
    assert_refused(refused_too, "x_api_key", SECRET)
    for (status, body), (_, name) in zip(raw, SERVED_REFUSALS, strict=True):
        assert status == 400, body
        assert json.loads(body)["error"] == {
            "code": "credential_in_query", "field": name, "message": ANY
        }
        assert SECRET not in body and TAIL not in body
    assert ok.status_code == 200
    assert token not in output and SECRET not in output and TAIL not in output
    access = [line for line in output.splitlines() if f"GET {SEARCH}" in line]
    assert len(access) == 3 + len(SERVED_REFUSALS), output
    for line in access[:-1]:
        assert f"GET {SEARCH}?{REDACTED} HTTP/1.1" in line, line
    assert f"GET {SEARCH}?action=DELETE HTTP/1.1" in access[-1]
