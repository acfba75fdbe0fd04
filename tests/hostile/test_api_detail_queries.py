"""Every query in ``detail_queries/`` against the detail route of a real record (indexed in the
real OpenSearch, archived in the real S3 with a signed digest listing its object): the API
answers what the file's ``expect`` says, never a 5xx; an error names the parameter in one
escaped line of at most 300 characters; a listed secret appears nowhere (the answer, the
read's audit record, a log line of the server side or the output).

A file holds ``params`` (``[[name, value], ...]``, sent encoded as any client sends them; a big
value is ``{"repeat", "times", "prefix", "suffix"}``) or ``query`` (a raw query string, sent as
it is, with ``secrets``). ``expect`` is ``{"status", "code", "field"}`` or, for a 200,
``{"status": 200, "proof": <status> | null}`` (null: the answer has no proof member)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.settings import Settings
from tests.api._digests import Chain, new_signer
from tests.api.conftest import Capture, IndexRecords
from tests.archive._archive import put_archive

pytestmark = pytest.mark.services

FILES = sorted((Path(__file__).parent / "detail_queries").glob("*.json"))
DETAIL = "/api/audit-logs/detail/{}/"


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 10


def value_of(spec: str | dict[str, Any]) -> str:
    if isinstance(spec, str):
        return spec
    repeated = str(spec["repeat"]) * int(spec["times"])
    return str(spec.get("prefix", "")) + repeated + str(spec.get("suffix", ""))


@pytest.fixture
def record(api_settings: Settings, index_records: IndexRecords, tmp_path: Path) -> dict[str, Any]:
    """A record indexed and archived, its object listed by a signed digest."""
    (made,) = index_records([{"action": "LOGIN", "request_id": "req-detail"}])
    (key,) = put_archive(api_settings, [made], stream="hostile-0")
    chain = Chain(api_settings, "hostile-0", new_signer(tmp_path))
    chain.add(0, [key], dt.datetime.now(dt.UTC))
    return made


@pytest.fixture
def server_side(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Callable[[], str]:
    """What the server side said so far: every log line (at any level) and all output."""
    caplog.set_level(logging.DEBUG)

    def said() -> str:
        # The test's own HTTP client logs the URL it sends: that line is the caller's.
        lines = [f"{r.getMessage()} {vars(r)!r}" for r in caplog.records
                 if not r.name.startswith("httpx")]
        return "\n".join([*lines, *capsys.readouterr()])

    return said


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_hostile_detail_queries(
    path: Path,
    client: TestClient,
    record: dict[str, Any],
    audit_capture: Capture,
    server_side: Callable[[], str],
) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("why"), f"{path.name}: say why this file is here"
    url = DETAIL.format(record["log_id"])
    if "params" in case:
        params = tuple((str(name), value_of(spec)) for name, spec in case["params"])
        secrets: list[str] = []
        response = client.get(url, params=params)
    else:
        secrets = list(case["secrets"])
        response = client.get(f"{url}?{case['query']}")

    expect = case["expect"]
    assert response.status_code == expect["status"], response.text
    body = response.json()
    if response.status_code == 200:
        found = body.pop("proof", None)
        assert body == record
        assert (None if found is None else found["status"]) == expect["proof"]
        (read,) = audit_capture.records
        assert read.extra.get("proof") == expect["proof"]  # type: ignore[attr-defined]
    else:
        error = body["error"]
        assert (error["code"], error["field"]) == (expect["code"], expect["field"])
        message = error["message"]
        assert len(message) <= 300
        assert not any(ord(c) < 32 or c == "\x7f" for c in message), message
        assert audit_capture.records == []  # a refused read is no read
    said = "\n".join([response.text, repr(response.headers), server_side()])
    for secret in secrets:
        assert secret not in said, f"{path.name}: the secret shows"
