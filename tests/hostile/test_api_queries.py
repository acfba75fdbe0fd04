"""Every query in ``queries/`` against the search route, over the real OpenSearch and S3: the API
answers what the file's ``expect`` says, never a 5xx, with an error message of one bounded
line; and a session value (a live credential) appears nowhere: not in the answer, the read's
own audit record, a log line of the server side or the output.

A file holds ``params`` (``[[name, value], ...]``, sent encoded as any client sends them) or
``query`` (a raw query string, sent as it is, with ``secrets``: strings of it that must not
appear). A value is a string or, for big ones, ``{"repeat", "times", "prefix", "suffix"}``;
``{"stored_form_of": raw}`` is the stored form of a raw session key under the API's settings.
The index holds one record of session :data:`KNOWN_SESSION` with request id ``req-known``,
from ``::ffff:1.2.3.4``, and another; the archive a twin of each, from before the index's
retention. Each query is sent as given (the index answers) and with a ``start_time`` long
ago (both tiers answer: a count twice the file's)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.session_key import HASH_PREFIX, stored_session_key
from audit_logging.settings import Settings
from tests.api.conftest import Capture, IndexRecords
from tests.archive._archive import before_the_index, put_archive, twins_at

pytestmark = pytest.mark.services

FILES = sorted((Path(__file__).parent / "queries").glob("*.json"))
SEARCH = "/api/audit-logs/search/"
KNOWN_SESSION = "hostile-known-session-7f3a"
SINCE: tuple[tuple[str, str], ...] = (("start_time", "2000-01-01"),)


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 10


def value_of(spec: str | dict[str, Any], settings: Settings) -> str:
    if isinstance(spec, str):
        return spec
    if "stored_form_of" in spec:
        stored = stored_session_key(spec["stored_form_of"], "hash", settings.hash_key)
        assert stored is not None
        return str(stored)
    repeated = str(spec["repeat"]) * int(spec["times"])
    return str(spec.get("prefix", "")) + repeated + str(spec.get("suffix", ""))


@pytest.fixture
def settings(api_settings: Settings, index_records: IndexRecords) -> Settings:
    """The API's settings, with the known records indexed, and a twin of each in the archive
    alone (older than the index's retention)."""
    assert api_settings.session_key_mode == "hash" and api_settings.hash_key is not None
    indexed = index_records(
        [
            {
                "action": "LOGIN",
                "request_id": "req-known",
                "ip_address": "::ffff:1.2.3.4",  # kept in IPv6 form, as capture keeps it
                "session_key": stored_session_key(KNOWN_SESSION, "hash", api_settings.hash_key),
            },
            {"action": "LOGIN", "request_id": "req-other"},
        ]
    )
    put_archive(api_settings, twins_at(before_the_index(api_settings), indexed))
    return api_settings


@pytest.fixture
def server_side(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Callable[[], str]:
    """What the server side said so far: every log line (at any level) and all output."""
    caplog.set_level(logging.DEBUG)

    def said() -> str:
        # The test's own HTTP client logs the URL it sends (as a caller's client may):
        # that line is the caller's, not the API's.
        lines = [
            f"{record.getMessage()} {vars(record)!r}"
            for record in caplog.records
            if not record.name.startswith("httpx")
        ]
        return "\n".join([*lines, *capsys.readouterr()])

    return said


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_hostile_queries(
    path: Path,
    client: TestClient,
    settings: Settings,
    audit_capture: Capture,
    server_side: Callable[[], str],
) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("why"), f"{path.name}: say why this file is here"

    # Each query twice: as given (the index alone), and reaching back past the index's
    # retention (both tiers: the archive holds a twin of every indexed record).
    said: list[str] = []
    for reach, tiers, per_record in (((), ["index"], 1), (SINCE, ["index", "archive"], 2)):
        if "params" in case:
            params = tuple((str(name), value_of(spec, settings))
                           for name, spec in case["params"])
            secrets = [value for name, value in params if name == "session"]
            response = client.get(SEARCH, params=params + reach)
        else:
            secrets = list(case["secrets"])
            query = "&".join([case["query"], *(f"{name}={value}" for name, value in reach)])
            response = client.get(f"{SEARCH}?{query}")

        expect = case["expect"]
        assert response.status_code == expect["status"], (reach, response.text)
        body = response.json()
        if response.status_code == 200:
            assert (body["count"], body["tiers"]) == (expect["count"] * per_record, tiers)
            if reach:
                assert body["notices"] == []  # the archive was read, not passed over
            (read,) = audit_capture.records
            if any(name == "session" for name, _ in case.get("params", [])):
                assert read.extra["filters"]["session"] == "given"  # type: ignore[attr-defined]
        else:
            error = body["error"]
            assert (error["code"], error["field"]) == (expect["code"], expect["field"])
            message = error["message"]
            assert "\n" not in message and "\r" not in message and len(message) <= 300
            assert audit_capture.records == []  # a refused search is no read
        said.extend([
            response.text,
            repr(response.headers),
            *(f"{r.getMessage()} {vars(r)!r}" for r in audit_capture.records),
        ])
        audit_capture.records.clear()
    said.append(server_side())
    said_all = "\n".join(said)
    for secret in secrets:
        # The whole value, and any 12 characters of it that are not filler (nor the prefix
        # every stored form has, which the lookup's own query holds).
        rest = secret.removeprefix(HASH_PREFIX)
        chunks = {secret, *(rest[i : i + 12] for i in range(max(len(rest) - 11, 1)))}
        shown = [c for c in chunks if c.strip() and len(set(c)) > 2 and c in said_all]
        assert not shown, f"{path.name}: the session value shows: {shown[:3]}"
