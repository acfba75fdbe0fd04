"""``verify --integrity`` beyond the tampering of the issue, against the real S3 and RabbitMQ:
unsigned chains, forks, unreadable and edited digests, streams without digests, partitions,
another consumer name, --since/--until, bad usage (exit 2) and a failing service (exit 3)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_logging.archive.digest_format import digest_key
from audit_logging.settings import Settings
from tests._ports import free_port
from tests._stack import delete_stream
from tests.archive._archive import archive_command, command_env
from tests.archive._digests import (
    START,
    archive_object,
    build_archive,
    delete,
    get,
    integrity,
    kinds,
    new_signer,
    put,
    put_digest,
    read_digest,
    sign,
    store_reference,
)

pytestmark = pytest.mark.services


def test_an_unsigned_chain_verifies_with_a_warning(settings: Settings, tmp_path: Path) -> None:
    built = build_archive(settings, [None] * 3)
    code, report = integrity(settings)
    assert (code, kinds(report)) == (0, [])
    assert report["streams"][0]["unsigned_digests"] == 3
    assert any("3 unsigned digest(s)" in warning for warning in report["warnings"])
    _, public = new_signer(tmp_path, "k1")
    code, report = integrity(settings, "--public-key", str(public))
    assert (code, kinds(report)) == (1, [("unsigned_digest", key) for key in built.digests])


def test_an_unsigned_digest_after_signed_ones(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer, signer, None])
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("unsigned_after_signed", built.digests[2])])


def test_a_second_digest_naming_the_same_previous_one_is_a_fork(
        settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3)
    second = read_digest(settings, built.digests[1]).digest
    twin = dataclasses.replace(second, written_by="a second writer")
    # Written a day later: a key of its own.
    key = digest_key(settings.s3_prefix, built.stream, START + dt.timedelta(days=1),
                     twin.first_offset, twin.last_offset)
    assert key != built.digests[1]
    put_digest(settings, key, sign(twin, signer))
    code, report = integrity(settings)
    assert (code, kinds(report)) == (1, [("fork", key)])


def test_a_digest_that_is_no_digest(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3)
    put(settings, built.digests[1], b'{"digest": "overwritten"}')
    stray = f"{settings.s3_prefix}digest/{built.stream}/notes.txt"
    put(settings, stray, b"hello")
    code, report = integrity(settings)
    assert (code, sorted(kinds(report))) == (
        1, sorted([("digest_unreadable", built.digests[1]), ("digest_unreadable", stray)]))
    unreadable = next(p for p in report["problems"] if p["key"] == built.digests[1])
    assert unreadable["detail"] == "the object: 'signature' is missing"
    assert sorted(unreadable["objects"]) == sorted(built.objects[1])


def test_a_digest_edited_without_its_key(settings: Settings, tmp_path: Path) -> None:
    """An object replaced and its digest's entry edited to match: the signature tells."""
    signer, public = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3)
    signed = read_digest(settings, built.digests[1])
    entry = signed.digest.objects[0]
    edited = dataclasses.replace(signed.digest, objects=(
        dataclasses.replace(entry, sha256="0" * 64), *signed.digest.objects[1:]))
    put_digest(settings, built.digests[1], dataclasses.replace(signed, digest=edited))
    for pinned in ((), ("--public-key", str(public))):
        code, report = integrity(settings, *pinned)
        assert (code, [k for k, _ in kinds(report)]) == (1, ["bad_signature", "object_altered"])
        assert kinds(report)[0] == ("bad_signature", built.digests[1])
        assert built.digests[2] in report["problems"][0]["detail"]  # its successor's link


def test_a_stream_with_objects_and_no_digest(settings: Settings) -> None:
    added = [archive_object(settings, settings.rabbitmq_stream_name, START, offset, 5)
             for offset in (0, 5)]
    code, report = integrity(settings)
    folder = f"{settings.s3_prefix}digest/{settings.rabbitmq_stream_name}/"
    assert (code, kinds(report)) == (1, [("no_digest", folder)])
    assert sorted(report["problems"][0]["objects"]) == sorted(e.key for e in added)


def test_a_stored_reference_and_no_digest(settings: Settings) -> None:
    store_reference(settings, settings.rabbitmq_stream_name, 41)
    code, report = integrity(settings)
    folder = f"{settings.s3_prefix}digest/{settings.rabbitmq_stream_name}/"
    assert (code, kinds(report)) == (1, [("no_digest", folder)])
    assert "stored offset 41" in report["problems"][0]["detail"]


def test_nothing_at_all_verifies(settings: Settings) -> None:
    code, report = integrity(settings)
    assert (code, kinds(report)) == (0, [])
    [stream] = report["streams"]
    assert (stream["digests"], stream["in_rabbitmq"]) == (0, False)


def test_another_consumer_name(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3, reference=False)
    store_reference(settings, built.stream, built.last_offset, consumer_name="eu-archive")
    delete(settings, built.digests[2])
    code, report = integrity(settings)
    assert (code, kinds(report)) == (0, [])  # nothing under the default name: not checked,
    assert any("nothing is stored under 'audit-logging-consumer/digest'" in warning
               for warning in report["warnings"])  # and said
    code, report = integrity(settings, "--consumer-name", "eu-archive")
    assert (code, kinds(report)) == (1, [("chain_behind_reference", built.digests[1])])
    assert report["reference"] == "eu-archive/digest"


@pytest.fixture
def partitioned(settings: Settings) -> Iterator[Settings]:
    settings = dataclasses.replace(settings, stream_partitions=2)
    yield settings
    for index in range(2):
        asyncio.run(delete_stream(settings, f"{settings.rabbitmq_stream_name}-{index}"))


def test_each_partition_has_its_chain(partitioned: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    name = partitioned.rabbitmq_stream_name
    first = build_archive(partitioned, [signer] * 2, stream=f"{name}-0")
    code, report = integrity(partitioned)
    # The second partition has neither objects nor digests yet: nothing to prove.
    assert (code, kinds(report)) == (0, [])
    assert [s["stream"] for s in report["streams"]] == [f"{name}-0", f"{name}-1"]
    second = build_archive(partitioned, [signer] * 2, stream=f"{name}-1")
    assert integrity(partitioned)[0] == 0
    delete(partitioned, second.digests[1])
    delete(partitioned, first.objects[0][0])
    code, report = integrity(partitioned)
    assert (code, kinds(report)) == (1, [("object_missing", first.objects[0][0]),
                                         ("chain_behind_reference", second.digests[0])])


def test_since_and_until_hash_the_objects_of_their_digests_only(
        settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3, start=START)
    early, late = built.objects[0][0], built.objects[2][0]
    for key in (early, late):
        body = bytearray(get(settings, key))
        body[-20] ^= 0xFF
        put(settings, key, bytes(body))
    delete(settings, built.objects[0][1])
    # The third digest's period is 11:00 to 12:00 on START's day.
    span = ("--since", "2026-03-02T11:30:00Z", "--until", "2026-03-02T23:00:00Z")
    code, report = integrity(settings, *span)
    # The early digest's objects are not read, but their presence is checked.
    assert (code, kinds(report)) == (1, [("object_missing", built.objects[0][1]),
                                         ("object_altered", late)])
    assert report["streams"][0]["objects_checked"] == len(built.objects[2])
    assert any("--since/--until" in warning for warning in report["warnings"])
    code, report = integrity(settings)
    assert sorted(kinds(report)) == sorted([("object_missing", built.objects[0][1]),
                                            ("object_altered", late), ("object_altered", early)])


def test_since_and_until_judge_unlisted_objects_last_modified_in_range(
        settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    build_archive(settings, [signer] * 2)
    added = archive_object(settings, settings.rabbitmq_stream_name, START, 2, 3)
    today = dt.datetime.now(dt.UTC).date()
    past = today - dt.timedelta(days=10)
    code, report = integrity(settings, "--since", str(past), "--until",
                             str(past + dt.timedelta(days=1)))
    assert (code, kinds(report)) == (0, [])
    code, report = integrity(settings, "--since", str(today))
    assert (code, kinds(report)) == (1, [("unlisted_object", added.key)])


@pytest.mark.parametrize("args", [
    ("verify", "--integrity", "--repair"),
    ("verify", "--integrity", "--index-prefix", "x"),
    ("verify", "--public-key", "k.pem", "--since", "2026-01-01", "--until", "2026-01-02"),
    ("verify", "--until", "2026-01-02"),
    ("verify", "--integrity", "--since", "yesterday"),
    ("verify", "--integrity", "--since", "2026-01-02", "--until", "2026-01-01"),
    ("verify", "--integrity", "--consumer-name", "a b"),
    ("verify", "--integrity", "--public-key", "/nonexistent/k.pem"),
])
def test_bad_usage_exits_2(settings: Settings, args: tuple[str, ...]) -> None:
    done = archive_command(settings, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_public_key_file_that_is_no_key_exits_2(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "k.pem"
    bad.write_text("not a key")
    done = archive_command(settings, "verify", "--integrity", "--public-key", str(bad))
    assert done.returncode == 2
    assert "--public-key" in done.stderr and str(bad) in done.stderr


def test_s3_failing_exits_3(settings: Settings) -> None:
    env = command_env(settings)
    env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"
    done = archive_command(settings, "verify", "--integrity", env=env)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("verify: failed: ")


def test_rabbitmq_failing_exits_3(settings: Settings) -> None:
    env = command_env(settings)
    port = free_port()
    env["RABBITMQ_STREAM_PORT"] = str(port)
    done = archive_command(settings, "verify", "--integrity", env=env)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"RabbitMQ (localhost:{port})" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_json_report_lists_every_problem(settings: Settings, tmp_path: Path) -> None:
    signer, _ = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 2)
    for keys in built.objects:
        for key in keys:
            delete(settings, key)
    done = archive_command(settings, "verify", "--integrity", "--json")
    answer = json.loads(done.stdout)
    assert done.returncode == 1
    assert answer["problem_counts"] == {"object_missing": 5}
    assert {p["key"] for p in answer["problems"]} == {k for keys in built.objects for k in keys}
    assert set(answer) == {"archive", "since", "before", "reference", "pinned_keys", "intact",
                           "streams", "problem_counts", "problems", "warnings", "bytes_checked",
                           "seconds"}


def test_an_object_replaced_by_a_larger_one_is_read_no_further_than_its_listed_size(
    settings: Settings, tmp_path: Path
) -> None:
    signer, public = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 2)
    replaced = built.objects[0][0]
    listed = len(get(settings, replaced))
    total = sum(len(get(settings, key)) for keys in built.objects for key in keys)
    # Someone with write access puts 32 MB under a listed key: verify need not read it all
    # to know it is not what the digest lists.
    put(settings, replaced, b"\0" * (32 * 1024 * 1024))
    code, report = integrity(settings, "--public-key", str(public))
    assert (code, kinds(report)) == (1, [("object_altered", replaced)])
    assert f"more than {listed:,} bytes" in report["problems"][0]["detail"]
    assert report["bytes_checked"] == total + 1
