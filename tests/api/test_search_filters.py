"""The request_id, source and session filters of GET /api/audit-logs/search/, against the
real OpenSearch: each narrows a search to exactly the records that match, and the raw
session key (a live credential) is never stored, logged, echoed or audited."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.api.credentials import REDACTED, RefuseCredentialsInQuery
from audit_logging.record_filter import MAX_SESSION_LENGTH
from audit_logging.session_key import stored_session_key
from audit_logging.settings import Secret, Settings
from tests.api.conftest import Capture, IndexRecords
from tests.api.test_main import environment, serve
from tests.archive._archive import before_the_index, put_archive, twins_at

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["results"])
    return {item["log_id"] for item in body["results"]}


def log_ids(records: list[dict[str, Any]], *positions: int) -> set[str]:
    return {records[i]["log_id"] for i in positions}


def assert_bad_parameter(response: Any, name: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("bad_parameter", name)
    return str(error["message"])


def test_request_id_and_source_narrow_to_exactly_the_matching_records(
    client: TestClient, index_records: IndexRecords
) -> None:
    records = index_records(
        [
            {"action": "CREATE", "request_id": "req-1", "source": "billing"},
            {"action": "UPDATE", "request_id": "req-1", "source": "shop"},
            {"action": "DELETE", "request_id": "req-10", "source": "billing"},
            {"action": "LOGIN", "request_id": "REQ-1", "source": "Billing"},
            {"action": "LOGOUT"},  # no request id; source: the settings' (none here)
        ]
    )
    cases = [
        ({"request_id": "req-1"}, log_ids(records, 0, 1)),
        ({"request_id": "REQ-1"}, log_ids(records, 3)),  # exact: case counts
        ({"request_id": "req-10"}, log_ids(records, 2)),
        ({"request_id": "req"}, set()),  # whole value, never a prefix
        ({"source": "billing"}, log_ids(records, 0, 2)),
        ({"source": "shop"}, log_ids(records, 1)),
        ({"request_id": "req-1", "source": "billing"}, log_ids(records, 0)),
        ({"request_id": "req-1", "action": "UPDATE"}, log_ids(records, 1)),
        ({"source": "nowhere"}, set()),
    ]
    for params, expected in cases:
        assert ids(client.get(SEARCH, params=params)) == expected, params


@pytest.fixture
def session_records(
    api_settings: Settings, index_records: IndexRecords
) -> tuple[str, list[dict[str, Any]]]:
    """A raw session key and records as capture stores them: two of that session, one of
    another, one without a session."""
    raw = "sess-" + secrets.token_urlsafe(24)

    def stored(key: str) -> str | None:
        # As the middleware and the handler store it: an HMAC with AUDIT_LOG_HASH_KEY.
        return stored_session_key(key, api_settings.session_key_mode, api_settings.hash_key)

    assert api_settings.session_key_mode == "hash" and api_settings.hash_key is not None
    records = index_records(
        [
            {"action": "LOGIN", "user_id": "u1", "session_key": stored(raw)},
            {"action": "UPDATE", "user_id": "u1", "session_key": stored(raw)},
            {"action": "UPDATE", "user_id": "u1", "session_key": stored(raw + "x")},
            {"action": "UPDATE", "user_id": "u1"},
        ]
    )
    assert records[0]["session_key"].startswith("hmac-sha256:")
    return raw, records


def everything_said(capture: Capture, caplog: pytest.LogCaptureFixture, out: str) -> str:
    """All the reads' audit records (every attribute), every log line of the server side and
    all output. The test's HTTP client logs the URL it sends, as any client may: that line
    is the caller's, not the API's."""
    audited = [f"{record.getMessage()} {vars(record)!r}" for record in capture.records]
    logged = [
        f"{record.getMessage()} {vars(record)!r}"
        for record in caplog.records
        if not record.name.startswith("httpx")
    ]
    return "\n".join([*audited, *logged, out])


def test_session_finds_the_records_of_that_session_and_never_shows_the_key(
    client: TestClient,
    session_records: tuple[str, list[dict[str, Any]]],
    audit_capture: Capture,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw, records = session_records
    caplog.set_level(logging.DEBUG)  # the OpenSearch client's request bodies too
    found = client.get(SEARCH, params={"session": raw})
    narrowed = client.get(SEARCH, params={"session": raw, "action": "LOGIN"})
    wrong = client.get(SEARCH, params={"session": raw[:-1]})
    # The stored form given as if it were a cookie is hashed again: a client cannot pick
    # the value looked up.
    forged = client.get(SEARCH, params={"session": records[0]["session_key"]})
    too_long = client.get(SEARCH, params={"session": raw * (MAX_SESSION_LENGTH // len(raw) + 1)})

    assert ids(found) == log_ids(records, 0, 1)
    assert ids(narrowed) == log_ids(records, 0)
    assert ids(wrong) == set()
    assert ids(forged) == set()
    message = assert_bad_parameter(too_long, "session")
    assert f"at most {MAX_SESSION_LENGTH} characters" in message
    reads = [record.extra for record in audit_capture.records]  # type: ignore[attr-defined]
    assert [read["filters"] for read in reads] == [
        {"session": "given"},
        {"session": "given", "action": "LOGIN"},
        {"session": "given"},
        {"session": "given"},
    ]
    said = everything_said(audit_capture, caplog, "".join(capsys.readouterr()))
    for response in (found, narrowed, wrong, forged, too_long):
        said += response.text + repr(response.headers)
    assert raw not in said and raw[:-1] not in said
    # The OpenSearch client's request bodies were seen (and held the stored form only).
    assert records[0]["session_key"] in said


def test_session_reaches_archived_records_and_never_shows_the_key(
    client: TestClient,
    api_settings: Settings,
    *,
    session_records: tuple[str, list[dict[str, Any]]],
    audit_capture: Capture,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A search reaching past the index's retention finds the session's records in the
    archive too: the raw key is hashed before the archive is read, as for the index."""
    raw, records = session_records
    archived = twins_at(before_the_index(api_settings), records)
    put_archive(api_settings, archived)
    caplog.set_level(logging.DEBUG)
    since = {"start_time": "2000-01-01"}
    found = client.get(SEARCH, params={"session": raw, **since})
    narrowed = client.get(SEARCH, params={"session": raw, "action": "LOGIN", **since})
    wrong = client.get(SEARCH, params={"session": raw[:-1], **since})
    forged = client.get(SEARCH, params={"session": archived[0]["session_key"], **since})

    assert found.json()["tiers"] == ["index", "archive"] and found.json()["notices"] == []
    assert ids(found) == log_ids(records, 0, 1) | log_ids(archived, 0, 1)
    assert ids(narrowed) == log_ids(records, 0) | log_ids(archived, 0)
    assert ids(wrong) == ids(forged) == set()
    assert [read.extra["filters"]["session"]  # type: ignore[attr-defined]
            for read in audit_capture.records] == ["given"] * 4
    said = everything_said(audit_capture, caplog, "".join(capsys.readouterr()))
    for response in (found, narrowed, wrong, forged):
        said += response.text + repr(response.headers)
    assert raw not in said and raw[:-1] not in said


def test_session_under_raw_mode_looks_up_the_key_as_stored(
    api_settings: Settings,
    token: str,
    index_records: IndexRecords,
    audit_capture: Capture,
) -> None:
    raw_mode = dataclasses.replace(api_settings, session_key_mode="raw")
    raw = "raw-" + secrets.token_hex(8)
    over_long = "long-" + "y" * 300  # raw mode cuts a stored key to the field's 256
    records = index_records(
        [
            {"action": "LOGIN", "session_key": raw},
            {"action": "LOGIN", "session_key": over_long},
            {"action": "LOGIN", "session_key": "other"},
        ]
    )
    assert records[1]["session_key"] == over_long[:256]
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(raw_mode), headers=headers) as client:
        assert ids(client.get(SEARCH, params={"session": raw})) == log_ids(records, 0)
        assert ids(client.get(SEARCH, params={"session": over_long})) == log_ids(records, 1)
    for record in audit_capture.records:
        assert record.extra["filters"] == {"session": "given"}  # type: ignore[attr-defined]
        assert raw not in repr(vars(record)) and over_long[:256] not in repr(vars(record))


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        ({"session_key_mode": "drop"}, "AUDIT_LOG_SESSION_KEY_MODE is drop"),
        ({"hash_key": None}, "hash without AUDIT_LOG_HASH_KEY"),
    ],
)
def test_session_is_refused_where_no_session_keys_are_stored(
    api_settings: Settings,
    token: str,
    audit_capture: Capture,
    changes: dict[str, Any],
    cause: str,
) -> None:
    settings = dataclasses.replace(api_settings, **changes)
    raw = "sess-" + secrets.token_hex(8)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings), headers=headers) as client:
        response = client.get(SEARCH, params={"session": raw})
        other = client.get(SEARCH, params={"request_id": "r1"})
    message = assert_bad_parameter(response, "session")
    assert "AUDIT_LOG_SESSION_KEY_MODE" in message and cause in message
    assert raw not in response.text
    assert other.status_code == 200  # only the filter that could never match is refused
    assert len(audit_capture.records) == 1  # the refused search is no read


@pytest.mark.parametrize(("name", "limit"), [("request_id", 128), ("source", 128)])
def test_an_over_long_exact_filter_is_a_400_naming_it(
    client: TestClient, name: str, limit: int
) -> None:
    assert client.get(SEARCH, params={name: "x" * limit}).status_code == 200
    message = assert_bad_parameter(client.get(SEARCH, params={name: "x" * (limit + 1)}), name)
    assert f"at most {limit} characters, got {limit + 1}" in message


@pytest.mark.parametrize("name", ["request_id", "source", "session"])
def test_an_empty_filter_is_a_400_naming_it(client: TestClient, name: str) -> None:
    assert_bad_parameter(client.get(SEARCH, params={name: ""}), name)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        # Spelt otherwise, it is no parameter of the route: a credential in a URL.
        (f"{SEARCH}?Session=abc", "Session"),
        (f"{SEARCH}?session_id=abc", "session_id"),
        # Hidden after a separator Starlette does not split at: some other reader of the
        # URL would see a session there, so it is refused like any credential.
        (f"{SEARCH}?action=A;session=abc", "session"),
        (f"{SEARCH}?session=abc?session=def", "session"),
        (f"{SEARCH}?session=abc;token=def", "token"),
        # Only the search route takes it.
        ("/api/audit-logs/openapi.json?session=abc", "session"),
    ],
)
def test_session_is_accepted_only_as_the_search_routes_own_parameter(
    client: TestClient, target: str, name: str
) -> None:
    response = client.get(target)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "credential_in_query"
    assert response.json()["error"]["field"] == name
    assert "abc" not in response.text and "def" not in response.text


def test_the_search_route_is_recognised_under_a_mount_prefix() -> None:
    reached: list[str] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def receive() -> Any:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        sent.append(message)

    guard = RefuseCredentialsInQuery(app, accepted={SEARCH: ("session",)})

    def get(path: str, root_path: str = "") -> None:
        scope = {"type": "http", "path": path, "root_path": root_path, "headers": []}
        asyncio.run(guard({**scope, "query_string": b"session=abc"}, receive, send))

    get(f"/audit{SEARCH}", "/audit")
    get(SEARCH)
    assert reached == [f"/audit{SEARCH}", SEARCH] and sent == []
    get(f"/audit{SEARCH}")  # not the route without its mount
    get(f"/auditx{SEARCH}", "/audit")
    assert len(reached) == 2
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400, 400]


@pytest.fixture
def served_with_hash_key(
    stack_settings: Settings, index_prefix: str, token: str, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    assert isinstance(stack_settings.hash_key, Secret)
    env = environment(
        stack_settings,
        AUDIT_LOG_API_TOKENS=token,
        OPENSEARCH_INDEX_PREFIX=index_prefix,
        AUDIT_LOG_HASH_KEY=stack_settings.hash_key.get(),
    )
    with serve(env, "--env-file", str(tmp_path / "none.env")) as served:
        yield served


def test_the_served_api_keeps_the_session_key_out_of_its_access_log(
    served_with_hash_key: tuple[str, Any], token: str
) -> None:
    base, process = served_with_hash_key
    raw = "sess-" + secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {token}"}
    found = httpx.get(f"{base}{SEARCH}", params={"session": raw}, headers=auth, timeout=10)
    refused = httpx.get(f"{base}{SEARCH}", params={"session": raw * 200}, headers=auth, timeout=10)
    plain = httpx.get(f"{base}{SEARCH}", params={"action": "LOGIN"}, headers=auth, timeout=10)
    process.terminate()
    output, _ = process.communicate(timeout=30)
    assert found.status_code == 200 and found.json()["count"] == 0
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "session"
    assert plain.status_code == 200
    assert raw not in output and raw not in found.text + refused.text
    access = [line for line in output.splitlines() if f"GET {SEARCH}" in line]
    assert len(access) == 3, output
    assert f"GET {SEARCH}?{REDACTED} HTTP/1.1" in access[0]
    assert f"GET {SEARCH}?{REDACTED} HTTP/1.1" in access[1]
    assert f"GET {SEARCH}?action=LOGIN HTTP/1.1" in access[2]
