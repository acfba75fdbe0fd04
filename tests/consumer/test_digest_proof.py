"""What a real consumer archives and digests, the detail API proves record by record (real
RabbitMQ, OpenSearch and S3): the object's SHA-256 is that of its bytes, the digest is the
consumer's and its signature holds; an object archived after the newest digest is pending
until the next one (here, the one written at shutdown)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.api import create_app
from audit_logging.archive import digest_format as fmt
from audit_logging.archive.signing import load_public_pem, load_signer, new_private_pem
from audit_logging.archive.signing import verify_signature as signature_holds
from audit_logging.settings import Secret, Settings
from tests.consumer._digest_chain import archived_objects, chain
from tests.consumer._helpers import bodies_of, make_records, publish, wait_until
from tests.consumer._sinks import archived_log_ids, opensearch_count, read_object
from tests.consumer.conftest import StartConsumer

pytestmark = pytest.mark.services

ARGS = ("--batch-size", "20", "--flush-interval", "0.3")
DETAIL = "/api/audit-logs/detail/{}/"


def key_file(folder: Path) -> tuple[Path, str]:
    path = folder / "signing.pem"
    path.write_bytes(new_private_pem())
    return path, load_signer(path).key_id


def wait_archived_and_indexed(settings: Settings, count: int) -> None:
    wait_until(f"{count} records archived and indexed",
               lambda: (len(archived_log_ids(settings)), opensearch_count(settings)),
               lambda counts: counts == (count, count), 60)


def listed(settings: Settings) -> set[str]:
    return {entry.key for _, signed in chain(settings) for entry in signed.digest.objects}


def wait_digested(settings: Settings) -> None:
    stream = settings.rabbitmq_stream_name
    wait_until("a digest listing every archived object",
               lambda: (listed(settings), archived_objects(settings, stream)),
               lambda sets: bool(sets[1]) and sets[0] == sets[1], 60)


def api(settings: Settings) -> TestClient:
    token = secrets.token_hex(24)
    app = create_app(dataclasses.replace(settings, api_tokens=Secret(token)))
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def assert_proven(client: TestClient, settings: Settings, records: Sequence[dict[str, Any]],
                  signer: str) -> None:
    """Each record is covered by the consumer's digest, as an auditor checks it."""
    for record in records:
        response = client.get(DETAIL.format(record["log_id"]), params={"proof": "true"})
        assert response.status_code == 200, response.text
        body = response.json()
        found = body.pop("proof")
        assert body == record
        assert found["status"] == "covered", found
        data = read_object(settings, found["object"]["key"])
        assert found["object"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert found["object"]["size"] == len(data)
        digest = found["digest"]
        stored = json.loads(read_object(settings, digest["key"]))
        signed_bytes = fmt.canonical(stored["digest"])
        assert digest["sha256"] == hashlib.sha256(signed_bytes).hexdigest()
        assert digest["key_id"] == signer and digest["signed"] is True
        pem = read_object(settings, digest["public_key"])
        assert signature_holds(load_public_pem(pem), signed_bytes, digest["signature"])
        assert found["object"]["key"] in [o["key"] for o in stored["digest"]["objects"]]


def test_records_a_consumer_archived_and_digested_each_second_are_proven(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    key_path, signer = key_file(tmp_path)
    consumer = start_consumer(*ARGS, env={"AUDIT_LOG_SIGNING_KEY_FILE": str(key_path),
                                          "AUDIT_LOG_DIGEST_INTERVAL": "1"})
    records = make_records(60)
    publish(settings, bodies_of(records))
    wait_archived_and_indexed(settings, len(records))
    # The consumer seals a digest with the first batch it archives once the interval has
    # passed: records keep arriving, as in any busy hour.
    time.sleep(1.5)
    publish(settings, bodies_of(make_records(1)))
    wait_archived_and_indexed(settings, len(records) + 1)
    wait_digested(settings)
    with api(settings) as client:
        assert_proven(client, settings, [records[0], records[29], records[-1]], signer)
    assert consumer.stop() == 0, consumer.log()


def test_an_object_after_the_newest_digest_is_pending_until_the_next(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    key_path, signer = key_file(tmp_path)
    # An hour between digests: after the first (written right after a chain's first batch),
    # none comes before the test ends but the one written at shutdown.
    consumer = start_consumer(*ARGS, env={"AUDIT_LOG_SIGNING_KEY_FILE": str(key_path),
                                          "AUDIT_LOG_DIGEST_INTERVAL": "1h"})
    first = make_records(1)
    publish(settings, bodies_of(first))
    wait_archived_and_indexed(settings, 1)
    wait_digested(settings)
    later = make_records(20)
    publish(settings, bodies_of(later))
    wait_archived_and_indexed(settings, 21)
    with api(settings) as client:
        assert_proven(client, settings, first, signer)
        response = client.get(DETAIL.format(later[5]["log_id"]), params={"proof": "true"})
        found = response.json()["proof"]
        assert found["status"] == "pending", found
        data = read_object(settings, found["object"]["key"])
        assert found["object"]["sha256"] == hashlib.sha256(data).hexdigest()
        (newest_key, _), = chain(settings)
        assert newest_key in found["explanation"]
        assert consumer.stop() == 0, consumer.log()
        assert_proven(client, settings, later, signer)  # the shutdown digest lists them
