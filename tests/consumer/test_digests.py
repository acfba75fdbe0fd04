"""The consumer writes a chain of digests over what it archives: signed, linked, without a
gap in offsets, and listing every archive and dead-letter object exactly once, also when a
member is killed between two digests (real RabbitMQ and S3)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from audit_logging.archive import digest_format as fmt
from audit_logging.archive.signing import key_id, load_public_pem, load_signer, new_private_pem
from audit_logging.settings import Settings
from tests.consumer._digest_chain import assert_complete_chain
from tests.consumer._helpers import (
    NAME,
    bodies_of,
    make_records,
    publish,
    stored_offset,
    wait_until,
)
from tests.consumer._sinks import archive_keys, archived_log_ids, dead_letters, read_object
from tests.consumer.conftest import StartConsumer

pytestmark = pytest.mark.services

ARGS = ("--batch-size", "20", "--flush-interval", "0.3")
DIGESTED = fmt.digest_reference(NAME)


def _wait_archived(settings: Settings, records: int, letters: int = 0) -> None:
    """Until S3 holds that many records and dead letters (offsets say less: RabbitMQ's
    offset-tracking entries take offsets of their own)."""
    wait_until(
        f"{records} records and {letters} dead letters in S3",
        lambda: (len(archived_log_ids(settings)), len(dead_letters(settings))),
        lambda counts: counts == (records, letters),
        60,
    )


def _key_file(folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "signing.pem"
    path.write_bytes(new_private_pem())
    return path, load_signer(path).key_id


def test_a_run_leaves_a_signed_chain_that_lists_every_object_and_reaches_the_offset(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    key_path, signer = _key_file(tmp_path)
    consumer = start_consumer(
        *ARGS,
        env={"AUDIT_LOG_SIGNING_KEY_FILE": str(key_path), "AUDIT_LOG_DIGEST_INTERVAL": "1"},
    )
    # Three rounds more than an interval apart, each with a message that is not a record.
    for round_ in range(1, 4):
        publish(settings, [*bodies_of(make_records(60)), b"not a record"])
        _wait_archived(settings, 60 * round_, round_)
        time.sleep(1.2)
    assert consumer.stop() == 0, consumer.log()

    digests = assert_complete_chain(settings, signed_by=signer)
    assert len(digests) >= 3, [key for key, _ in digests]
    last = digests[-1][1].digest
    # The shutdown digest covers everything acknowledged, and RabbitMQ keeps where it ends.
    assert last.last_offset == stored_offset(settings, NAME)
    assert stored_offset(settings, DIGESTED) == last.last_offset
    kinds = {entry.kind for _, d in digests for entry in d.digest.objects}
    assert kinds == {"archive", "dead_letter"}
    rows = sum(entry.rows for _, d in digests for entry in d.digest.objects)
    assert rows == 3 * 61
    pem = read_object(settings, fmt.public_key_key(settings.s3_prefix, signer))
    assert key_id(load_public_pem(pem)) == signer


def test_a_member_killed_between_digests_leaves_no_object_out_of_the_chain(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    # Digests an hour apart: the first one comes right after the first batch, then none
    # until the member is killed, with several batches acknowledged past it.
    env = {"AUDIT_LOG_DIGEST_INTERVAL": "1h"}
    first = start_consumer(*ARGS, env=env)
    publish(settings, bodies_of(make_records(100)))
    _wait_archived(settings, 100)
    wait_until(
        "the offset of the last batch",
        lambda: (stored_offset(settings, NAME) or 0, stored_offset(settings, DIGESTED) or 0),
        lambda offsets: offsets[0] >= 99 and offsets[1] < offsets[0],
        30,
    )
    first.kill()

    second = start_consumer(*ARGS, env=env)
    publish(settings, bodies_of(make_records(40)))
    _wait_archived(settings, 140)
    assert second.stop() == 0, second.log()
    assert "archived after its last digest" in second.log()
    digests = assert_complete_chain(settings)
    assert digests[-1][1].digest.last_offset == stored_offset(settings, NAME)
    assert digests[-1][1].digest.written_by == NAME


def test_objects_of_a_batch_read_again_after_a_crash_are_listed_once(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    # The hook kills the process right after its second upload: that batch's offset is not
    # stored, so the next member reads it again and finds its file in S3.
    publish(settings, bodies_of(make_records(100)))
    env = {"AUDIT_LOG_DIGEST_INTERVAL": "1h"}
    hooked = start_consumer(*ARGS, env=env, crash_after_upload=2)
    assert hooked.wait(120) == 137, hooked.log()
    files_before = set(archive_keys(settings))
    assert len(files_before) == 2

    survivor = start_consumer(*ARGS, env=env)
    _wait_archived(settings, 100)
    assert survivor.stop() == 0, survivor.log()
    assert files_before <= set(archive_keys(settings))
    assert_complete_chain(settings)


def test_a_new_key_continues_the_chain_naming_the_old_one(
    settings: Settings, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    old_path, old = _key_file(tmp_path / "old")
    new_path, new = _key_file(tmp_path / "new")
    for number, path in enumerate((old_path, new_path), start=1):
        consumer = start_consumer(*ARGS, env={"AUDIT_LOG_SIGNING_KEY_FILE": str(path)})
        publish(settings, bodies_of(make_records(50)))
        _wait_archived(settings, 50 * number)
        assert consumer.stop() == 0, consumer.log()
    digests = assert_complete_chain(settings, signed_by=[old, new])
    rotated = next(d.digest for _, d in digests if d.digest.key_id == new)
    assert rotated.previous is not None and rotated.previous.key_id == old


def test_a_stream_that_goes_quiet_gets_its_digest_once_the_interval_has_passed(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    consumer = start_consumer(*ARGS, env={"AUDIT_LOG_DIGEST_INTERVAL": "2"})
    publish(settings, bodies_of(make_records(10)))
    _wait_archived(settings, 10)
    time.sleep(0.5)
    publish(settings, bodies_of(make_records(10)))
    _wait_archived(settings, 20)
    # Nothing more is published: the last batch is listed all the same, while the consumer
    # runs, without waiting for another batch or a stop.
    wait_until(
        "a digest of the last batch",
        lambda: (stored_offset(settings, DIGESTED), stored_offset(settings, NAME)),
        lambda offsets: offsets[0] is not None and offsets[0] == offsets[1],
        30,
    )
    assert consumer.running()
    assert_complete_chain(settings)
    assert consumer.stop() == 0, consumer.log()
