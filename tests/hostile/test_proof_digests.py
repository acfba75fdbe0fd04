"""Every object in ``digests/`` as the digest covering a real record's archive object, read by
the detail API's proof (real OpenSearch and S3): the answer is a 200 whose proof is a
``mismatch`` saying the digest cannot be parsed, in a bounded explanation; never a 5xx, never
``covered``; the API's log says so in one bounded line."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.settings import Settings
from tests.api._digests import Chain, new_signer, object_bytes
from tests.api.conftest import IndexRecords
from tests.archive._archive import put_archive
from tests.hostile.test_archive_files import load
from tests.hostile.test_digests import corpus

pytestmark = pytest.mark.services

STREAM = "hostile-proof-0"


@pytest.fixture
def covered(
    api_settings: Settings, index_records: IndexRecords, tmp_path: Path
) -> tuple[dict[str, Any], Chain]:
    """A record indexed and archived, its object listed by a signed digest."""
    (record,) = index_records([{"action": "LOGIN"}])
    (key,) = put_archive(api_settings, [record], stream=STREAM)
    chain = Chain(api_settings, STREAM, new_signer(tmp_path))
    chain.add(0, [key], dt.datetime.now(dt.UTC))
    return record, chain


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_a_hostile_covering_digest_is_a_bounded_mismatch(
    path: Path,
    client: TestClient,
    covered: tuple[dict[str, Any], Chain],
    caplog: pytest.LogCaptureFixture,
) -> None:
    record, chain = covered
    url = f"/api/audit-logs/detail/{record['log_id']}/"
    assert client.get(url, params={"proof": "true"}).json()["proof"]["status"] == "covered"
    ((digest_key, _),) = chain.written
    chain.put(digest_key, load(path).damage(object_bytes(chain.settings, digest_key)))
    with caplog.at_level(logging.WARNING, "audit_logging.api"):
        response = client.get(url, params={"proof": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    found = body.pop("proof")
    assert body == record
    assert (found["status"], found["digest"], found["listed"]) == ("mismatch", None, None)
    explanation = found["explanation"]
    assert explanation.startswith(f"The digest {digest_key} cannot be parsed: ")
    assert len(explanation) <= 600 and "\n" not in explanation
    lines = [r.getMessage() for r in caplog.records if r.name == "audit_logging.api"]
    assert any("mismatch" in line for line in lines)
    assert all(len(line) <= 1200 and "\n" not in line for line in lines)
