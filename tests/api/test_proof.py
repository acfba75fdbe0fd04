"""GET /api/audit-logs/detail/<log_id>/?proof=true against the real OpenSearch and S3: archive
objects and a signed digest chain written as the consumer writes them, read back as an
auditor would (boto3, hashlib, openssl)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from opensearchpy import OpenSearch, helpers
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.api.openapi import PROOF_STATUSES, openapi_document
from audit_logging.archive import parquet, proof
from audit_logging.archive.digest_format import canonical, public_key_key
from audit_logging.archive.signing import Signer, public_pem
from audit_logging.search_index import index_for, install_template
from audit_logging.settings import Settings
from tests.api._digests import Chain, new_signer, object_bytes
from tests.api.conftest import Capture, IndexRecords
from tests.archive._archive import before_the_index, put_archive, record_at

pytestmark = pytest.mark.services

# What an auditor runs on the object and its digest: the README's own commands (its block
# after "A proof for one record"), the downloads left out (boto3 makes them here): the
# object's SHA-256, the SHA-256 of the digest's signed bytes (the canonical JSON of its
# "digest" member), and the signature over those bytes checked with the pinned public key.
def auditor_commands() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("**A proof for one record.**"):]
    block = block[block.index("```sh\n") + 6:]
    block = block[: block.index("```")]
    lines = [line for line in block.splitlines() if not line.startswith("aws s3 cp")]
    assert any(line.startswith("openssl pkeyutl -verify") for line in lines), block
    return "set -euo pipefail\n" + "\n".join(lines).replace(
        "sha256sum object.parquet", "sha256sum object.parquet | cut -d' ' -f1").replace(
        "sha256sum digest.bin", "sha256sum digest.bin | cut -d' ' -f1").replace(
        "python3 -c", '"$PYTHON" -c')


DETAIL = "/api/audit-logs/detail/{}/"
# A partition's stream: a '-' in the name, as super streams name theirs.
STREAM = "orders-audit-0"
UTC = dt.UTC


@dataclasses.dataclass
class Archive:
    """Objects A (old records, archived only) 0-4, B 5-9, C 10-14, D 15-19 and E 20-24 (the
    recent records, indexed too); digest 0 lists A and B (offsets 0-9), digest 1, written the
    next day, C and D (10-19); E is after the newest digest. One more record is indexed but
    not archived."""

    settings: Settings
    client: TestClient
    chain: Chain
    signer: Signer
    old: list[dict[str, Any]]
    recent: list[dict[str, Any]]
    unarchived: dict[str, Any]
    keys: dict[str, str]  # A..E -> object key
    os_client: OpenSearch

    def get(self, record: dict[str, Any], **params: str) -> Any:
        return self.client.get(DETAIL.format(record["log_id"]), params=params)

    def proof_of(self, record: dict[str, Any]) -> dict[str, Any]:
        response = self.get(record, proof="true")
        assert response.status_code == 200, response.text
        body = response.json()
        found = body.pop("proof")
        assert body == record  # the record as without a proof
        return dict(found)

    def facts(self, name: str) -> dict[str, Any]:
        """The object as an auditor finds it: its bytes fetched with boto3, hashed here."""
        data = object_bytes(self.settings, self.keys[name])
        return {"key": self.keys[name], "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data)}


def index(os_client: OpenSearch, prefix: str, records: list[dict[str, Any]]) -> None:
    install_template(os_client, prefix)
    actions = [{"_index": index_for(prefix, r["timestamp"]), "_id": r["log_id"], "_source": r}
               for r in records]
    assert helpers.bulk(os_client, actions, refresh="wait_for")[0] == len(records)


@pytest.fixture
def archive(
    api_settings: Settings, os_client: OpenSearch, token: str, tmp_path: Path
) -> Iterator[Archive]:
    settings = api_settings
    old_moment = before_the_index(settings)
    old = [record_at(old_moment + dt.timedelta(seconds=i), object_id=f"old{i}")
           for i in range(5)]
    yesterday = dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    noon = dt.datetime(yesterday.year, yesterday.month, yesterday.day, 12, tzinfo=UTC)
    recent = [record_at(noon + dt.timedelta(seconds=i), object_id=f"new{i}") for i in range(20)]
    unarchived = record_at(noon + dt.timedelta(minutes=5), object_id="unarchived")
    keys = put_archive(settings, old, per_file=5, stream=STREAM)
    keys += put_archive(settings, recent, per_file=5, stream=STREAM, first_offset=5)
    named = dict(zip("ABCDE", keys, strict=True))
    index(os_client, settings.opensearch_index_prefix, [*recent, unarchived])
    signer = new_signer(tmp_path)
    chain = Chain(settings, STREAM, signer)
    chain.publish_key()
    chain.add(9, [named["A"], named["B"]], noon + dt.timedelta(minutes=1))
    chain.add(19, [named["C"], named["D"]], noon + dt.timedelta(days=1))
    with TestClient(create_app(settings),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        yield Archive(settings, client, chain, signer, old, recent, unarchived, named, os_client)


def in_object(archive: Archive, name: str) -> dict[str, Any]:
    """A recent record archived in object ``name`` (B to E)."""
    return archive.recent["BCDE".index(name) * 5 + 2]


def test_a_covered_record_names_its_object_and_the_signed_digest_listing_it(
    archive: Archive, audit_capture: Capture, tmp_path: Path
) -> None:
    record = in_object(archive, "C")
    response = archive.get(record, proof="true")
    assert response.headers["x-audit-log-tier"] == "index"
    found = archive.proof_of(record)
    assert found["status"] == "covered", found
    facts = archive.facts("C")
    assert found["object"] == facts
    assert found["listed"] == {"sha256": facts["sha256"], "size": facts["size"]}
    # The digest as an auditor reads it: its bytes from S3, the canonical JSON of its
    # "digest" member hashed and its signature checked with openssl.
    digest_key = archive.chain.written[1][0]
    stored = json.loads(object_bytes(archive.settings, digest_key))
    signed_bytes = canonical(stored["digest"])
    key_id = archive.signer.key_id
    assert found["digest"] == {
        "key": digest_key,
        "sha256": hashlib.sha256(signed_bytes).hexdigest(),
        "signed": True,
        "key_id": key_id,
        "public_key": public_key_key(archive.settings.s3_prefix, key_id),
        "signature": stored["signature"],
    }
    listed = [o for o in stored["digest"]["objects"] if o["key"] == facts["key"]]
    assert [(o["sha256"], o["size"]) for o in listed] == [(facts["sha256"], facts["size"])]
    # An auditor's steps with common tools (the downloads are boto3's here, `aws s3 cp` for
    # them), the public key being the one they pinned.
    (tmp_path / "object.parquet").write_bytes(object_bytes(archive.settings, facts["key"]))
    (tmp_path / "digest.json").write_bytes(object_bytes(archive.settings, digest_key))
    (tmp_path / "audit-signing.pub.pem").write_bytes(public_pem(archive.signer.public))
    checked = subprocess.run(["bash", "-c", auditor_commands()], cwd=tmp_path, capture_output=True,
                             text=True, check=False, env={**os.environ, "PYTHON": sys.executable})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.split() == [facts["sha256"], found["digest"]["sha256"],
                                      "Signature", "Verified", "Successfully"]
    assert "does not check the signature" in found["explanation"]
    views = [r for r in audit_capture.records if getattr(r, "action", None) == "VIEW"]
    assert [r.extra["proof"] for r in views] == ["covered", "covered"]  # type: ignore[attr-defined]


def test_a_record_the_archive_alone_holds_is_proven_from_it(archive: Archive) -> None:
    record = archive.old[3]
    response = archive.get(record, proof="true")
    assert response.status_code == 200, response.text
    assert response.headers["x-audit-log-tier"] == "archive"
    found = archive.proof_of(record)
    assert found["status"] == "covered", found
    assert found["object"] == archive.facts("A")
    assert found["digest"]["key"] == archive.chain.written[0][0]


def test_an_object_after_the_newest_digest_is_pending(archive: Archive) -> None:
    found = archive.proof_of(in_object(archive, "E"))
    assert found["status"] == "pending", found
    assert found["object"] == archive.facts("E")
    assert found["digest"] is None and found["listed"] is None
    assert archive.chain.written[1][0] in found["explanation"]


def test_a_stream_without_digests_is_pending(archive: Archive) -> None:
    for key, _ in archive.chain.written:
        archive.chain.delete(key)
    found = archive.proof_of(in_object(archive, "B"))
    assert (found["status"], found["object"], found["digest"]) == (
        "pending", archive.facts("B"), None)
    assert "No digest of stream orders-audit-0" in found["explanation"]


def test_a_record_not_archived_yet_says_so(archive: Archive) -> None:
    found = archive.proof_of(archive.unarchived)
    assert found["status"] == "not_archived", found
    assert found["object"] is None and found["digest"] is None


def test_without_proof_the_answer_is_unchanged(archive: Archive) -> None:
    record = in_object(archive, "C")
    for params in ({}, {"proof": "false"}):
        response = archive.get(record, **params)
        assert response.status_code == 200, response.text
        assert response.json() == record
    old = archive.get(archive.old[0], proof="false")
    assert old.json() == archive.old[0] and old.headers["x-audit-log-tier"] == "archive"


@pytest.fixture
def indexed(index_records: IndexRecords) -> str:
    """The detail URL of an indexed record (the parameter is checked before any lookup)."""
    (record,) = index_records([{"action": "LOGIN"}])
    return DETAIL.format(record["log_id"])


@pytest.mark.parametrize(
    "value", ["1", "TRUE", "True", "yes", "", "true ", " true", "true\x00", "x" * 10_000])
def test_a_bad_proof_value_is_a_400_naming_it(
    client: TestClient, indexed: str, value: str
) -> None:
    response = client.get(indexed, params={"proof": value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("bad_parameter", "proof")
    assert "true or false" in error["message"] and len(error["message"]) <= 300


def test_proof_given_twice_or_misspelt_is_a_400_naming_it(
    client: TestClient, indexed: str
) -> None:
    for query, field in (("proof=true&proof=true", "proof"), ("Proof=true", "Proof"),
                         ("proof=true&fields=all", "fields")):
        response = client.get(f"{indexed}?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["field"] == field, query


def test_the_document_lists_the_parameters_the_detail_accepts(
    client: TestClient, indexed: str
) -> None:
    served = client.get("/api/audit-logs/openapi.json").json()
    parameters = served["paths"]["/api/audit-logs/detail/{log_id}/"]["get"]["parameters"]
    documented = [p["name"] for p in parameters if p["in"] == "query"]
    message = client.get(indexed, params={"no_such": "x"}).json()["error"]["message"]
    assert f"(known: {', '.join(documented)})" in message
    (schema,) = [p["schema"] for p in parameters if p["name"] == "proof"]
    for value in schema["enum"]:
        assert client.get(indexed, params={"proof": value}).status_code == 200


def test_a_proof_needs_a_token(client: TestClient, indexed: str) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer " + "0" * 48}):
        response = client.get(indexed, params={"proof": "true"}, headers=headers)
        assert response.status_code == 401
        assert "proof" not in response.text


# -- what an auditor must see -----------------------------------------------------------


def test_an_object_changed_after_its_digest_is_a_mismatch(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    key = archive.keys["C"]
    before = archive.facts("C")
    # Read once before the change (the API keeps archive files it has read in memory).
    assert archive.proof_of(in_object(archive, "C"))["status"] == "covered"
    assert archive.get(in_object(archive, "C")).status_code == 200
    # The same records in another order: a valid file holding the record, other bytes.
    table = pq.read_table(io.BytesIO(object_bytes(archive.settings, key)))
    archive.chain.put(key, parquet.parquet_bytes(table.take(list(range(4, -1, -1)))))
    found = archive.proof_of(in_object(archive, "C"))
    assert found["status"] == "mismatch", found
    assert found["object"] == archive.facts("C") != before
    assert found["listed"] == {"sha256": before["sha256"], "size": before["size"]}
    assert found["digest"]["key"] == archive.chain.written[1][0]
    assert "changed after the digest was written" in found["explanation"]
    # The operators' log says so too.
    logged = [r.getMessage() for r in caplog.records if r.name == "audit_logging.api"]
    log_id = in_object(archive, "C")["log_id"]
    assert [m for m in logged if m.startswith(f"archive proof of {log_id}: mismatch: ")]


def test_an_object_no_digest_lists_is_a_mismatch(archive: Archive) -> None:
    # An object added in the offsets digest 1 covers, holding a record of its own.
    added = record_at(dt.datetime.fromisoformat(archive.recent[0]["timestamp"]),
                      object_id="added")
    (key,) = put_archive(archive.settings, [added], stream=STREAM, first_offset=12)
    index(archive.os_client, archive.settings.opensearch_index_prefix, [added])
    found = archive.proof_of(added)
    assert found["status"] == "mismatch", found
    assert found["object"]["key"] == key and found["listed"] is None
    assert "does not list it" in found["explanation"]


def test_an_unparsable_digest_is_a_mismatch(archive: Archive) -> None:
    archive.chain.put(archive.chain.written[1][0], b'{"digest": {"format": 1}')
    found = archive.proof_of(in_object(archive, "D"))
    assert found["status"] == "mismatch", found
    assert found["object"] == archive.facts("D") and found["digest"] is None
    assert "cannot be parsed" in found["explanation"]


def test_a_digest_moved_to_another_key_is_a_mismatch(archive: Archive) -> None:
    # Digest 0's bytes under digest 1's key, which names offsets 10-19: its own say 0-9.
    (_, first), (second_key, _) = archive.chain.written
    archive.chain.put(second_key, first.object_bytes())
    found = archive.proof_of(in_object(archive, "C"))
    assert found["status"] == "mismatch", found
    assert "not the 10-19 its key names" in found["explanation"]


def test_a_removed_digest_between_two_is_a_mismatch(archive: Archive) -> None:
    archive.chain.add(24, [archive.keys["E"]], dt.datetime.now(UTC))
    archive.chain.delete(archive.chain.written[1][0])
    found = archive.proof_of(in_object(archive, "C"))
    assert found["status"] == "mismatch", found
    assert found["object"] == archive.facts("C") and found["digest"] is None
    assert "has been removed" in found["explanation"]
    assert archive.chain.written[0][0] in found["explanation"]
    assert archive.chain.written[2][0] in found["explanation"]


def test_removed_first_digests_are_a_mismatch(archive: Archive) -> None:
    archive.chain.delete(archive.chain.written[0][0])
    found = archive.proof_of(in_object(archive, "B"))
    assert found["status"] == "mismatch", found
    assert "the digests before it have been removed" in found["explanation"]
    assert found["digest"]["key"] == archive.chain.written[1][0]


def test_objects_before_a_chain_that_starts_later_are_not_covered(archive: Archive) -> None:
    for key, _ in archive.chain.written:
        archive.chain.delete(key)
    chain = Chain(archive.settings, STREAM, None)  # unsigned, starting at offset 10
    chain.add(19, [archive.keys["C"], archive.keys["D"]], dt.datetime.now(UTC), first_offset=10)
    found = archive.proof_of(in_object(archive, "B"))
    assert found["status"] == "not_covered", found
    assert found["digest"]["key"] == chain.written[0][0]
    covered = archive.proof_of(in_object(archive, "C"))
    assert covered["status"] == "covered"
    assert covered["digest"]["signed"] is False and covered["digest"]["key_id"] is None
    assert covered["digest"]["public_key"] is None and covered["digest"]["signature"] is None


def test_a_record_the_index_holds_otherwise_is_a_mismatch(archive: Archive) -> None:
    record = in_object(archive, "C")
    edited = {**record, "change_message": "Nothing happened"}
    archive.os_client.index(index=index_for(archive.settings.opensearch_index_prefix,
                                            record["timestamp"]),
                            id=record["log_id"], body=edited, refresh="wait_for")
    response = archive.get(record, proof="true")
    body = response.json()
    found = body.pop("proof")
    assert body == edited  # the detail answers what the index holds ...
    assert found["status"] == "mismatch", found  # ... and the proof says it was not archived so
    assert "(fields: change_message)" in found["explanation"]
    assert found["object"] == archive.facts("C")


def test_an_unreadable_object_of_the_records_day_is_told(archive: Archive) -> None:
    key = archive.keys["C"]
    archive.chain.put(key, object_bytes(archive.settings, key)[:100])
    found = archive.proof_of(in_object(archive, "C"))
    assert found["status"] == "unreadable", found
    assert key in found["explanation"] and found["object"] is None
    # Other objects of that day are proven as before.
    assert archive.proof_of(in_object(archive, "D"))["status"] == "covered"


# -- where a proof cannot be made ------------------------------------------------------


def test_a_proof_past_the_archive_deadline_is_a_503(
    archive: Archive, token: str
) -> None:
    app = create_app(archive.settings, archive_timeout=0.0)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        url = DETAIL.format(in_object(archive, "C")["log_id"])
        response = client.get(url, params={"proof": "true"})
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert "deadline" in response.json()["error"]["message"]
        assert client.get(url).status_code == 200  # without a proof: answered from the index


def test_a_proof_when_s3_cannot_be_read_is_a_503(
    archive: Archive, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = dataclasses.replace(archive.settings, aws_endpoint_url_s3="http://127.0.0.1:9")
    with TestClient(create_app(unreachable),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        url = DETAIL.format(in_object(archive, "C")["log_id"])
        with caplog.at_level(logging.WARNING, "audit_logging.api"):
            response = client.get(url, params={"proof": "true"})
        assert response.status_code == 503, response.text
        assert "could not be read" in response.json()["error"]["message"]
        assert any("archive proof failed" in r.getMessage() for r in caplog.records)


def test_a_proof_without_an_archive_bucket_is_a_400(archive: Archive, token: str) -> None:
    no_bucket = dataclasses.replace(archive.settings, s3_bucket=None)
    with TestClient(create_app(no_bucket),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        url = DETAIL.format(in_object(archive, "C")["log_id"])
        response = client.get(url, params={"proof": "true"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["field"] == "proof" and "AUDIT_LOG_AWS_S3_BUCKET" in error["message"]
        assert client.get(url).status_code == 200


def test_the_document_describes_the_proof_as_the_api_makes_it() -> None:
    assert PROOF_STATUSES == proof.STATUSES
    schema = openapi_document()["components"]["schemas"]["Proof"]
    made = proof.Proof("covered", "x", proof.ObjectFacts("k", "0" * 64, 1),
                       proof.DigestFacts("d", "1" * 64, True, None, None, None),
                       proof.Listed("0" * 64, 1)).as_json()
    assert list(schema["properties"]) == list(made) == schema["required"]
    for member in ("object", "digest", "listed"):
        assert list(schema["properties"][member]["properties"]) == list(made[member])
