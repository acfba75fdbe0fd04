"""Every header set in ``headers/`` through both the ASGI and the WSGI middleware: the
request succeeds, and the record holds what the file's ``expect`` says.

A header value is a string (each character up to U+00FF is one byte, as HTTP reads header
bytes; a string with a character above that is sent as UTF-8) or, for big values,
``{"repeat": s, "times": n, "prefix": "", "suffix": ""}``. ``expect`` holds record fields
compared exactly, and three checks by name: ``ip_address_note`` (a text the note must hold,
or null for no note), ``session_key_of`` (the raw value the stored session key must be the
hash of) and ``request_id: "generated"`` (the client's id was replaced by a new one).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.middleware._drive import RUNNERS, expected_hash

FILES = sorted((Path(__file__).parent / "headers").glob("*.json"))
GENERATED = re.compile(r"[0-9a-f]{32}")
PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
STORED_SESSION = re.compile(r"hmac-sha256:[0-9a-f]{64}")


def header_value(value: str | dict[str, Any]) -> str:
    if isinstance(value, str):
        return value
    repeated = str(value["repeat"]) * int(value["times"])
    return str(value.get("prefix", "")) + repeated + str(value.get("suffix", ""))


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 25


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_hostile_headers(path: Path, runner: str) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("why"), f"{path.name}: say why this file is here"
    headers = [(name, header_value(value)) for name, value in case["headers"]]
    options: dict[str, Any] = {"trusted_proxies": case.get("trusted_proxies", [])}
    if case.get("forwarded_header"):
        options["forwarded_header"] = case["forwarded_header"]

    outcome = RUNNERS[runner](headers, client=case.get("client"), **options)

    assert outcome.status == 200
    record = outcome.record
    # Whatever the file, these hold: the echoed id is the stored one and plain, the
    # stored session is the library's hash, the user agent has no control characters.
    assert outcome.request_id_header == record["request_id"]
    assert PLAIN_REQUEST_ID.fullmatch(record["request_id"])
    assert record["session_key"] is None or STORED_SESSION.fullmatch(record["session_key"])
    assert not re.search(r"[\x00-\x1f\x7f]", record["user_agent"] or "")
    note = (record["extra"] or {}).get("ip_address_note")
    for key, want in case["expect"].items():
        if key == "ip_address_note":
            assert (note is None) if want is None else (note is not None and want in note), note
        elif key == "session_key_of":
            assert record["session_key"] == expected_hash(want)
        elif key == "request_id" and want == "generated":
            sent = {n.lower(): v for n, v in headers}.get("x-request-id")
            assert GENERATED.fullmatch(record["request_id"])
            assert record["request_id"] != sent
        else:
            assert record[key] == want, key
