"""Every object in ``digests/``: a digest as anyone who can write to the bucket might leave
it. The reader refuses it with one bounded line (never another exception, never a crash),
and a real consumer that finds it as its chain's newest digest keeps archiving and says so."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from audit_logging.archive import digest_format as fmt
from audit_logging.archive.signing import load_signer, new_private_pem
from audit_logging.settings import Settings
from tests._stack import s3_client
from tests.consumer._helpers import bodies_of, make_records, publish, wait_until
from tests.consumer._sinks import archived_log_ids, read_object, s3_keys
from tests.consumer.conftest import StartConsumer
from tests.hostile.test_archive_files import load

CORPUS = Path(__file__).parent / "digests"


def corpus() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.py") if p.name != "__init__.py")


def good_digest(tmp_path: Path, stream: str = "s") -> bytes:
    key = tmp_path / "key.pem"
    key.write_bytes(new_private_pem())
    signer = load_signer(key)
    entry = fmt.ObjectEntry(
        f"audit-logs/year=2026/month=01/day=02/{stream}-{0:020d}-{9:020d}.parquet",
        "archive", "0" * 64, 1234, 10, 0, 9,
        "2026-01-02T00:00:00.000000Z", "2026-01-02T00:00:01.000000Z",
    )  # fmt: skip
    digest = fmt.Digest(stream, 0, 0, 9, "2026-01-02T00:00:00.000000Z",
                        "2026-01-02T01:00:00.000000Z", (entry,), None, signer.key_id, "tests")
    return fmt.SignedDigest(digest, signer.sign(digest.signed_bytes())).object_bytes()


def test_the_corpus_is_there() -> None:
    assert len(corpus()) >= 15


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_the_reader_refuses_it_in_one_bounded_line(path: Path, tmp_path: Path) -> None:
    good = good_digest(tmp_path)
    assert fmt.parse_digest(good).digest.sequence == 0
    with pytest.raises(fmt.DigestFormatError) as caught:
        fmt.parse_digest(load(path).damage(good))
    message = str(caught.value)
    assert "\n" not in message and len(message) <= 300, message


@pytest.mark.services
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_a_consumer_that_finds_it_as_the_newest_digest_keeps_archiving(
    path: Path, tmp_path: Path, settings: Settings, start_consumer: StartConsumer
) -> None:
    stream = settings.rabbitmq_stream_name
    key = fmt.digest_key(settings.s3_prefix, stream, dt.datetime.now(dt.UTC), 0, 9)
    s3_client(settings).put_object(
        Bucket=settings.s3_bucket, Key=key, Body=load(path).damage(good_digest(tmp_path, stream))
    )
    consumer = start_consumer("--batch-size", "10", "--flush-interval", "0.3")
    publish(settings, bodies_of(make_records(20)))
    wait_until("20 records in S3", lambda: len(archived_log_ids(settings)), lambda n: n == 20, 60)
    assert consumer.stop() == 0, consumer.log()
    log = consumer.log()
    assert f"the newest digest {key} cannot be read" in log, log
    # One bounded line about it, whatever the object held.
    assert all(len(line) < 1000 for line in log.splitlines())
    # The chain starts again after it (verify --integrity reports the unreadable one).
    fresh = others(settings, key)
    assert fresh and fresh[0][1].digest.sequence == 0


def others(settings: Settings, hostile: str) -> list[tuple[str, fmt.SignedDigest]]:
    """The digests besides the hostile one (which no reader can parse)."""
    keys = [k for k in s3_keys(settings, "digest/") if k.endswith(".json") and k != hostile]
    found = [(k, fmt.parse_digest(read_object(settings, k))) for k in keys]
    return sorted(found, key=lambda item: item[1].digest.first_offset)
