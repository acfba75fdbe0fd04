"""End to end: real consumers build an archive with digests (one a second, small batches), and
``python -m audit_logging.archive verify --integrity`` run as a user runs it proves it intact,
also across a restart, after a member is killed between digests and across a failover in a
group, and reports tampering (real RabbitMQ and S3)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging.archive import digest_format as fmt
from audit_logging.archive.signing import load_signer, new_private_pem, public_pem
from audit_logging.settings import Settings
from tests.archive._archive import archive_command
from tests.archive._digests import delete, put
from tests.consumer._digest_chain import chain
from tests.consumer._helpers import (
    NAME,
    bodies_of,
    make_records,
    publish,
    stored_offset,
    wait_until,
)
from tests.consumer._sinks import (
    archive_keys,
    archived_log_ids,
    dead_letters,
    read_object,
    wait_for_all,
)
from tests.consumer.conftest import StartConsumer
from tests.consumer.test_groups import ACTIVE, STANDBY, publish_paced, wait_for_log

pytestmark = pytest.mark.services

ARGS = ("--batch-size", "20", "--flush-interval", "0.3")


def _keys(folder: Path) -> tuple[Path, Path]:
    """A signing key for the consumer and its public key for verify (pinned)."""
    private = folder / "signing.pem"
    private.write_bytes(new_private_pem())
    public = folder / "public.pem"
    public.write_bytes(public_pem(load_signer(private).public))
    return private, public


def _archived(settings: Settings, records: int, letters: int) -> None:
    wait_until(
        f"{records} records and {letters} dead letters in S3",
        lambda: (len(archived_log_ids(settings)), len(dead_letters(settings))),
        lambda counts: counts == (records, letters),
        60,
    )


def _rounds(settings: Settings, first: int, count: int) -> None:
    """``count`` rounds of 60 records and a message that is not one, more than a digest
    interval apart."""
    for round_ in range(first, first + count):
        publish(settings, [*bodies_of(make_records(60)), b"not a record"])
        _archived(settings, 60 * round_, round_)
        time.sleep(1.2)


def _verify(settings: Settings, *args: str) -> tuple[int, dict[str, Any], str]:
    done = archive_command(settings, "verify", "--integrity", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    text = archive_command(settings, "verify", "--integrity", *args)
    assert text.returncode == done.returncode, text.stderr
    return done.returncode, json.loads(done.stdout), text.stdout


def _problems(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["kind"], p["key"]) for p in report["problems"]]


def test_a_consumer_built_archive_verifies_and_a_flipped_byte_does_not(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    private, public = _keys(tmp_path)
    consumer = start_consumer(
        *ARGS, env={"AUDIT_LOG_SIGNING_KEY_FILE": str(private), "AUDIT_LOG_DIGEST_INTERVAL": "1"})
    _rounds(settings, 1, 3)
    assert consumer.stop() == 0, consumer.log()
    digests = chain(settings)
    assert len(digests) >= 3

    code, report, text = _verify(settings, "--public-key", str(public))
    assert (code, _problems(report)) == (0, [])
    [stream] = report["streams"]
    assert stream["digests"] == len(digests)
    assert stream["last_offset"] == stream["reference_offset"] == stored_offset(
        settings, fmt.digest_reference(NAME))
    listed = {e.key for _, d in digests for e in d.digest.objects}
    assert stream["objects_checked"] == len(listed) > 3
    assert "verify --integrity: no problem found" in text

    tampered = sorted(archive_keys(settings))[1]
    body = bytearray(read_object(settings, tampered))
    body[len(body) // 3] ^= 0x20
    put(settings, tampered, bytes(body))
    code, report, text = _verify(settings, "--public-key", str(public))
    assert (code, _problems(report)) == (1, [("object_altered", tampered)])
    assert f"object_altered: {tampered}: sha256" in text


def test_the_newest_digest_of_a_consumer_removed(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    private, public = _keys(tmp_path)
    consumer = start_consumer(
        *ARGS, env={"AUDIT_LOG_SIGNING_KEY_FILE": str(private), "AUDIT_LOG_DIGEST_INTERVAL": "1"})
    _rounds(settings, 1, 2)
    assert consumer.stop() == 0, consumer.log()
    digests = chain(settings)
    delete(settings, digests[-1][0])
    code, report, _ = _verify(settings, "--public-key", str(public))
    assert (code, _problems(report)) == (1, [("chain_behind_reference", digests[-2][0])])


def test_an_archive_verifies_across_a_restart_and_a_killed_member(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    private, public = _keys(tmp_path)
    env = {"AUDIT_LOG_SIGNING_KEY_FILE": str(private), "AUDIT_LOG_DIGEST_INTERVAL": "1"}
    first = start_consumer(*ARGS, env=env)
    _rounds(settings, 1, 2)
    assert first.stop() == 0, first.log()

    second = start_consumer(*ARGS, env=env)  # a restart: the chain goes on
    _rounds(settings, 3, 1)
    assert second.stop() == 0, second.log()
    code, report, _ = _verify(settings, "--public-key", str(public))
    assert (code, _problems(report)) == (0, [])
    assert report["streams"][0]["last_offset"] == stored_offset(settings, NAME)

    # Killed with digests an hour apart: what it archived after its last digest is pending.
    third = start_consumer(*ARGS, env={**env, "AUDIT_LOG_DIGEST_INTERVAL": "1h"})
    publish(settings, [*bodies_of(make_records(60)), b"not a record"])
    _archived(settings, 240, 4)
    wait_until("the last batch's offset stored past the digests",
               lambda: (stored_offset(settings, NAME) or 0,
                        stored_offset(settings, fmt.digest_reference(NAME)) or 0),
               lambda offsets: offsets[0] > offsets[1], 30)
    third.kill()
    code, report, _ = _verify(settings, "--public-key", str(public))
    assert (code, _problems(report)) == (0, [])
    assert report["streams"][0]["pending"]["count"] > 0

    fourth = start_consumer(*ARGS, env=env)  # lists what the killed one left undigested
    _rounds(settings, 5, 1)
    assert fourth.stop() == 0, fourth.log()
    code, report, _ = _verify(settings, "--public-key", str(public))
    assert (code, _problems(report)) == (0, [])
    assert report["streams"][0]["pending"]["count"] == 0
    assert report["streams"][0]["last_offset"] == stored_offset(settings, NAME)


def test_an_archive_verifies_across_a_failover(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    private, public = _keys(tmp_path)
    args = (*ARGS, "--consumer-name", "archive")
    env = {"AUDIT_LOG_SIGNING_KEY_FILE": str(private), "AUDIT_LOG_DIGEST_INTERVAL": "1"}
    expected, publisher = publish_paced(settings, 1500, per_second=300)
    active = start_consumer(*args, env=env)
    wait_for_log(active, ACTIVE, 20)
    standby = start_consumer(*args, env=env, workdir="standby")
    wait_for_log(standby, STANDBY, 20)
    wait_until("the active member to archive 500 records",
               lambda: len(archived_log_ids(settings)), lambda n: n >= 500, 30)
    active.kill()
    publisher.join_checked(30)
    wait_for_all(settings, expected, 60)
    assert standby.stop() == 0, standby.log()
    assert "resumes stream" in standby.log(), standby.log()

    code, report, _ = _verify(settings, "--public-key", str(public), "--consumer-name", "archive")
    assert (code, _problems(report)) == (0, [])
    [stream] = report["streams"]
    assert stream["reference_offset"] == stream["last_offset"] == stored_offset(settings,
                                                                                 "archive")
    writers = {d.digest.written_by for _, d in chain(settings)}
    assert writers == {"archive"}
