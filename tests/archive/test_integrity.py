"""``python -m audit_logging.archive verify --integrity`` against archives with digests in the
real S3 and digest references in the real RabbitMQ, run as a user runs it: an untouched
archive verifies (also across a key rotation), and each tampering is reported as exactly its
problem, with the object's key, and exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_logging.archive.digest_format import public_key_key
from audit_logging.archive.signing import public_pem
from audit_logging.settings import Settings
from tests.archive._archive import archive_command
from tests.archive._digests import (
    PERIOD,
    START,
    archive_object,
    build_archive,
    delete,
    digest_keys,
    get,
    integrity,
    kinds,
    new_signer,
    publish,
    put,
    put_digest,
    read_digest,
    sign,
)

pytestmark = pytest.mark.services


def test_an_untouched_archive_verifies(settings: Settings, tmp_path: Path) -> None:
    signer, public = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    code, report = integrity(settings)
    assert (code, kinds(report)) == (0, [])
    assert report["intact"] is True
    [stream] = report["streams"]
    assert stream["stream"] == settings.rabbitmq_stream_name
    assert (stream["digests"], stream["first_offset"], stream["last_offset"]) == (
        4, 0, built.last_offset)
    assert stream["reference_offset"] == built.last_offset
    assert stream["objects_checked"] == sum(len(keys) for keys in built.objects) == 9
    assert stream["bytes_checked"] == report["bytes_checked"] > 0
    assert stream["key_ids"] == [signer.key_id]
    assert stream["pending"] == {"count": 0, "sample": []}
    # Not pinned: said so.
    assert any("--public-key" in warning for warning in report["warnings"])
    pinned_code, pinned = integrity(settings, "--public-key", str(public))
    assert (pinned_code, kinds(pinned), pinned["pinned_keys"]) == (0, [], [signer.key_id])
    assert not any("--public-key" in warning for warning in pinned["warnings"])


def test_the_text_report_names_each_problem_with_its_key(settings: Settings,
                                                         tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3)
    intact = archive_command(settings, "verify", "--integrity")
    assert intact.returncode == 0, intact.stderr
    assert "verify --integrity: no problem found" in intact.stdout
    assert "7 objects" in intact.stdout
    delete(settings, built.objects[1][0])
    done = archive_command(settings, "verify", "--integrity")
    assert done.returncode == 1, done.stderr
    assert f"object_missing: {built.objects[1][0]}: listed by {built.digests[1]}" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "verify --integrity: 1 problem(s): " \
        "object_missing 1"


def test_an_archive_verifies_across_a_key_rotation(settings: Settings, tmp_path: Path) -> None:
    old, old_public = new_signer(tmp_path, "old")
    new, new_public = new_signer(tmp_path, "new")
    build_archive(settings, [old, old, new, new])
    rotated = read_digest(settings, digest_keys(settings)[2])
    assert rotated.digest.key_id == new.key_id
    assert rotated.digest.previous is not None and rotated.digest.previous.key_id == old.key_id
    code, report = integrity(settings)
    assert (code, kinds(report)) == (0, [])
    assert report["streams"][0]["key_ids"] == sorted([old.key_id, new.key_id])
    code, report = integrity(settings, "--public-key", str(old_public),
                             "--public-key", str(new_public))
    assert (code, kinds(report)) == (0, [])
    # Pinning the new key alone: the old key's digests are not proven.
    code, report = integrity(settings, "--public-key", str(new_public))
    assert code == 1
    assert [kind for kind, _ in kinds(report)] == ["unpinned_key"]


# -- each tampering, each in its own test ----------------------------------------------------


def test_one_byte_flipped_in_a_parquet_file(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    key = built.objects[2][1]
    body = bytearray(get(settings, key))
    body[len(body) // 2] ^= 0x01
    put(settings, key, bytes(body))
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("object_altered", key)])
    assert "sha256" in report["problems"][0]["detail"]


def test_a_parquet_file_deleted(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    key = built.objects[1][0]
    delete(settings, key)
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("object_missing", key)])


def test_a_parquet_file_no_digest_lists(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    # Offsets the chain covers, under a name of its own.
    added = archive_object(settings, settings.rabbitmq_stream_name, START, 3, 4)
    assert added.key not in {k for keys in built.objects for k in keys}
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("unlisted_object", added.key)])


def test_a_digest_deleted_in_the_middle(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    delete(settings, built.digests[1])
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("missing_digest", built.digests[2])])
    problem = report["problems"][0]
    assert built.digests[1] in problem["detail"]
    # The objects it listed are counted in that problem, not each reported.
    assert sorted(problem["objects"]) == sorted(built.objects[1])


def test_the_newest_digest_deleted(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    delete(settings, built.digests[3])
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("chain_behind_reference", built.digests[2])])
    assert str(built.last_offset) in report["problems"][0]["detail"]
    # Its objects are after the chain's end now: pending, not each a problem.
    assert report["streams"][0]["pending"]["count"] == len(built.objects[3])


def test_two_digests_swapped(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 4)
    first, second = built.digests[1], built.digests[2]
    first_body, second_body = get(settings, first), get(settings, second)
    put(settings, first, second_body)
    put(settings, second, first_body)
    code, report = integrity(settings)
    assert (code, sorted(kinds(report))) == (
        1, sorted([("digest_key_mismatch", first), ("digest_key_mismatch", second)]))


def test_a_digest_re_signed_with_another_key(settings: Settings, tmp_path: Path) -> None:
    signer, public = new_signer(tmp_path, "k1")
    other, _ = new_signer(tmp_path, "intruder")
    built = build_archive(settings, [signer] * 4)
    key = built.digests[1]
    put_digest(settings, key, sign(read_digest(settings, key).digest, other))
    publish(settings, other)
    code, report = integrity(settings, "--public-key", str(public))
    assert (code, kinds(report)) == (1, [("unpinned_key", key)])
    # The successor's link to it disagrees: said in the same problem.
    assert built.digests[2] in report["problems"][0]["detail"]


def test_a_re_signed_digest_with_its_key_published_breaks_the_next_link(
        settings: Settings, tmp_path: Path) -> None:
    """Without pinned keys, the intruder's published key verifies its signature: the link of
    the digest after it is what tells."""
    signer, _ = new_signer(tmp_path, "k1")
    other, _ = new_signer(tmp_path, "intruder")
    built = build_archive(settings, [signer] * 4)
    key = built.digests[1]
    put_digest(settings, key, sign(read_digest(settings, key).digest, other))
    publish(settings, other)
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("broken_link", built.digests[2])])
    assert "sha256, signature, key_id" in report["problems"][0]["detail"]


def test_a_public_key_replaced_in_the_bucket(settings: Settings, tmp_path: Path) -> None:
    signer, public = new_signer(tmp_path, "k1")
    other, _ = new_signer(tmp_path, "intruder")
    build_archive(settings, [signer] * 4)
    key = public_key_key(settings.s3_prefix, signer.key_id)
    put(settings, key, public_pem(other.public))
    code, report = integrity(settings, "--public-key", str(public))
    assert (code, kinds(report)) == (1, [("public_key_differs", key)])
    # Without the pinned key, the file is not the key it is named after.
    code, report = integrity(settings)
    assert code == 1
    assert ("public_key_id_mismatch", key) in kinds(report)


def test_a_digest_chain_stays_intact_beside_other_streams_and_pending_objects(
        settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 2)
    other = build_archive(settings, [signer] * 2, stream=f"{built.stream}-other",
                          start=START + PERIOD * 5)
    written_later = archive_object(settings, built.stream, START + PERIOD * 3,
                                   built.last_offset + 1, 5)
    code, report = integrity(settings)
    assert (code, kinds(report)) == (0, [])
    streams = {s["stream"]: s for s in report["streams"]}
    assert set(streams) == {built.stream, other.stream}
    assert streams[built.stream]["pending"] == {"count": 1, "sample": [written_later.key]}
    assert streams[other.stream]["reference_offset"] == other.last_offset
