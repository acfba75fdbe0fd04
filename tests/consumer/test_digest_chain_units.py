"""DigestChain against the real S3 server, without a broker: what a member lists after each
way it can be made active again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from pathlib import Path

import pytest

from audit_logging.archive import digest_format as fmt
from audit_logging.archive import layout, parquet
from audit_logging.archive.signing import Signer, load_signer, new_private_pem
from audit_logging.consumer.digest_entries import parquet_entry
from audit_logging.consumer.digests import DigestChain
from audit_logging.consumer.ledger import MAX_FILE_SPAN
from audit_logging.consumer.s3 import S3Store, make_s3_client
from audit_logging.settings import Settings
from tests.consumer._digest_chain import assert_complete_chain
from tests.consumer._helpers import make_records

pytestmark = pytest.mark.services


@pytest.fixture
def store(settings: Settings) -> S3Store:
    return S3Store(make_s3_client(settings), settings.require("s3_bucket"), threading.Event())


def _chain(settings: Settings, store: S3Store, signer: Signer | None = None) -> DigestChain:
    return DigestChain(
        store, settings.s3_prefix, settings.rabbitmq_stream_name, "tests", 3600.0, signer
    )


def _signer(folder: Path) -> Signer:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "signing.pem"
    path.write_bytes(new_private_pem())
    return load_signer(path)


def _archive(settings: Settings, store: S3Store, chain: DigestChain, first: int, last: int) -> None:
    """What the archiver does for one batch of offsets ``first``..``last``."""
    records = make_records(last - first + 1)
    day = layout.day_of(records[0])
    key = layout.archive_key(settings.s3_prefix, settings.rabbitmq_stream_name, day, first, last)
    data = parquet.parquet_bytes(parquet.records_table(records))
    metadata = chain.vouch(key, data)
    assert store.put_create_only(key, data, parquet.PARQUET_CONTENT_TYPE, metadata=metadata)
    chain.load()
    chain.begin(first)
    chain.add(parquet_entry(key, data, first, last))


def test_a_member_made_active_again_lists_what_it_archived_before_at_its_next_seal(
    settings: Settings, store: S3Store
) -> None:
    chain = _chain(settings, store)
    _archive(settings, store, chain, 0, 9)
    assert chain.seal(9) == 9  # the chain's first digest
    _archive(settings, store, chain, 10, 19)
    # Offsets stored up to 19, then the broker makes this member active again (a reconnect,
    # a rebalance): what it held in memory is dropped, and it stops before another batch.
    chain.resume(19, 9)
    assert chain.seal(19) == 19
    digests = assert_complete_chain(settings)
    assert [d.digest.last_offset for _, d in digests] == [9, 19]


def test_a_seal_with_nothing_new_writes_nothing(settings: Settings, store: S3Store) -> None:
    chain = _chain(settings, store)
    _archive(settings, store, chain, 0, 9)
    assert chain.seal(9) == 9
    assert chain.seal(9) is None
    chain.resume(9, 9)
    assert chain.seal(9) is None
    assert len(assert_complete_chain(settings)) == 1


def test_newest_digests_removed_leave_a_gap_the_chain_does_not_paper_over(
    settings: Settings, store: S3Store
) -> None:
    chain = _chain(settings, store)
    for first in (0, 10, 20):
        _archive(settings, store, chain, first, first + 9)
        assert chain.seal(first + 9) == first + 9
    digests = settings.s3_prefix + "digest/"
    newest = [k for k in store.list_keys(digests) if k.endswith("-00000000000000000029.json")]
    assert len(newest) == 1
    store._client.delete_object(Bucket=store.bucket, Key=newest[0])
    # RabbitMQ still says the digests covered offset 29: the chain goes on after it.
    again = _chain(settings, store)
    again.resume(29, 29)
    _archive(settings, store, again, 30, 39)
    assert again.seal(39) == 39
    (key,) = [k for k in store.list_keys(digests) if k.endswith("-00000000000000000039.json")]
    written = fmt.parse_digest(store.get(key)).digest
    # It links to the newest digest left (offsets up to 19) and starts at 30: offsets 20 to
    # 29 stay uncovered for every reader to see.
    assert written.first_offset == 30
    assert written.previous is not None and written.previous.last_offset == 19


def test_an_object_reaching_past_a_seal_waits_for_a_digest_that_covers_all_its_offsets(
    settings: Settings, store: S3Store
) -> None:
    # A member killed before its first digest archived offsets 0..9 in one object. Its
    # successor reads them again in other batches (0..4, then 5..9): the ledger finds each
    # record in that object, and a digest is due right after the new chain's first batch.
    first = _chain(settings, store)
    _archive(settings, store, first, 0, 9)
    (key,) = [k for k in store.list_keys(settings.s3_prefix) if k.endswith(".parquet")]
    successor = _chain(settings, store)
    successor.resume(None, None)
    successor.load()
    successor.begin(0)
    successor.add_existing([key])
    # A seal in the middle of that object must not cover part of its offsets and leave the
    # object to a later digest starting after its first offset (verify --integrity:
    # object_outside_digest on an untouched archive).
    successor.seal(4)
    successor.add_existing([key])
    _archive(settings, store, successor, 10, 14)
    assert successor.seal(14) is not None
    assert_complete_chain(settings)


def test_an_object_spanning_more_offsets_than_a_batch_does_not_hold_the_chain_back(
    settings: Settings, store: S3Store
) -> None:
    chain = _chain(settings, store)
    _archive(settings, store, chain, 0, 9)
    assert chain.seal(9) == 9
    _archive(settings, store, chain, 10, 19)
    # Someone with write access to the bucket adds an object reaching far ahead; a member made
    # active again finds it after the chain's last digest.
    far = 12 + MAX_FILE_SPAN + 1
    forged = layout.archive_key(settings.s3_prefix, settings.rabbitmq_stream_name,
                                "2020-01-01", 12, far)
    assert store.put_create_only(forged, b"not parquet", parquet.PARQUET_CONTENT_TYPE)
    chain.resume(19, 9)
    assert chain.seal(19) == 19


def _listed(settings: Settings, store: S3Store) -> set[str]:
    keys = [k for k in store.list_keys(settings.s3_prefix + "digest/") if k.endswith(".json")]
    return {e.key for k in keys for e in fmt.parse_digest(store.get(k)).digest.objects}


def test_a_successor_lists_only_objects_its_group_signed_not_one_added_to_the_bucket(
    settings: Settings, store: S3Store, tmp_path: Path
) -> None:
    signer = _signer(tmp_path)
    chain = _chain(settings, store, signer)
    _archive(settings, store, chain, 0, 9)
    assert chain.seal(9) == 9
    _archive(settings, store, chain, 10, 19)  # then the member is killed, offset 19 stored
    stream = settings.rabbitmq_stream_name
    # Someone who can write to the bucket adds a file for offsets the next digest covers,
    # and another with a signature copied from a real object.
    forged = layout.archive_key(settings.s3_prefix, stream, "2020-01-01", 12, 13)
    data = parquet.parquet_bytes(parquet.records_table(make_records(2)))
    assert store.put_create_only(forged, data, parquet.PARQUET_CONTENT_TYPE)
    copied = layout.archive_key(settings.s3_prefix, stream, "2020-01-02", 14, 15)
    real_key = next(k for k in store.list_keys(settings.s3_prefix) if "-00000000000000000010-" in k)
    _, real_metadata = store.get_with_metadata(real_key)
    assert real_metadata
    assert store.put_create_only(copied, data, parquet.PARQUET_CONTENT_TYPE, metadata=real_metadata)
    successor = _chain(settings, store, signer)
    successor.resume(19, 9)
    assert successor.seal(19) == 19
    listed = _listed(settings, store)
    assert real_key in listed
    assert forged not in listed and copied not in listed


def test_a_forged_newest_digest_does_not_stop_the_chain(
    settings: Settings, store: S3Store, tmp_path: Path
) -> None:
    signer = _signer(tmp_path)
    stream = settings.rabbitmq_stream_name
    chain = _chain(settings, store, signer)
    _archive(settings, store, chain, 0, 9)
    assert chain.seal(9) == 9
    # Far ahead of every offset, in a day folder after every other; and one within reach,
    # naming our key, with a signature of another key.
    far = 10**15
    ahead = fmt.Digest(stream, 1, 10, far, "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z",
                       (), None, None, "attacker")
    key = fmt.digest_key(settings.s3_prefix, stream, dt.datetime(9999, 1, 1, tzinfo=dt.UTC),
                         10, far)
    assert store.put_create_only(key, fmt.SignedDigest(ahead, None).object_bytes(), "x")
    near = dataclasses.replace(ahead, last_offset=12, key_id=signer.key_id)
    other = _signer(tmp_path / "other")
    forged = fmt.SignedDigest(near, other.sign(near.signed_bytes()))
    near_key = fmt.digest_key(settings.s3_prefix, stream, dt.datetime.now(dt.UTC), 10, 12)
    assert store.put_create_only(near_key, forged.object_bytes(), "x")
    chain.resume(9, 9)  # a restart: RabbitMQ says the digests cover offset 9
    _archive(settings, store, chain, 10, 19)
    assert chain.seal(19) == 19
    (written,) = [k for k in store.list_keys(settings.s3_prefix + "digest/")
                  if k.endswith("-00000000000000000010-00000000000000000019.json")]
    previous = fmt.parse_digest(store.get(written)).digest.previous
    assert previous is not None and previous.last_offset == 9
