"""Archives with digests for the ``verify --integrity`` tests, written to the real S3 as the
consumer writes them: Parquet objects (and a dead-letter object), then a signed, chained
digest per period listing them, the public keys, and the digest reference stored in the real
RabbitMQ. Also the tampering the tests do to them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rstream import Consumer, Producer
from rstream.exceptions import OffsetNotFound

from audit_logging.archive import layout, parquet
from audit_logging.archive.digest_format import (
    Digest,
    ObjectEntry,
    SignedDigest,
    digest_key,
    digest_reference,
    parse_digest,
    public_key_key,
)
from audit_logging.archive.signing import Signer, load_signer, new_private_pem, public_pem
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record import format_timestamp
from audit_logging.settings import Settings
from audit_logging.stream_offsets import DEFAULT_CONSUMER_NAME
from tests.archive._archive import archive_command, record_at

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
PERIOD = dt.timedelta(hours=1)


def new_signer(directory: Path, name: str) -> tuple[Signer, Path]:
    """A fresh key pair: the signer, and the public key's PEM file (what a user pins)."""
    private = directory / f"{name}.pem"
    private.write_bytes(new_private_pem())
    signer = load_signer(private)
    public = directory / f"{name}.pub.pem"
    public.write_bytes(public_pem(signer.public))
    return signer, public


@dataclasses.dataclass
class Built:
    stream: str
    digests: list[str]  # keys, in chain order
    objects: list[list[str]]  # the keys each digest lists
    last_offset: int


def put(settings: Settings, key: str, body: bytes) -> None:
    make_s3_client(settings).put_object(Bucket=str(settings.s3_bucket), Key=key, Body=body)


def archive_object(settings: Settings, stream: str, moment: dt.datetime, first: int,
                   count: int) -> ObjectEntry:
    """``count`` records at offsets ``first``.. in one Parquet object, as the consumer writes."""
    records = [record_at(moment + dt.timedelta(seconds=i), object_id=f"obj_{first + i}")
               for i in range(count)]
    key = layout.archive_key(settings.s3_prefix, stream, layout.day_of(records[0]), first,
                             first + count - 1)
    body = parquet.parquet_bytes(parquet.records_table(records))
    put(settings, key, body)
    return ObjectEntry(key, "archive", hashlib.sha256(body).hexdigest(), len(body), count,
                       first, first + count - 1, records[0]["timestamp"],
                       records[-1]["timestamp"])


def dead_letter_object(settings: Settings, stream: str, moment: dt.datetime,
                       offset: int) -> ObjectEntry:
    key = f"{settings.s3_prefix}dead-letter/{stream}-{offset:020d}-{offset:020d}.ndjson"
    body = (json.dumps({"stream": stream, "offset": offset, "stage": "decode",
                        "code": "not_json", "reason": "not JSON"}) + "\n").encode()
    put(settings, key, body)
    stamp = format_timestamp(moment)
    return ObjectEntry(key, "dead_letter", hashlib.sha256(body).hexdigest(), len(body), 1,
                       offset, offset, stamp, stamp)


def put_digest(settings: Settings, key: str, signed: SignedDigest) -> None:
    put(settings, key, signed.object_bytes())


def sign(digest: Digest, signer: Signer | None) -> SignedDigest:
    if signer is None:
        return SignedDigest(dataclasses.replace(digest, key_id=None), None)
    digest = dataclasses.replace(digest, key_id=signer.key_id)
    return SignedDigest(digest, signer.sign(digest.signed_bytes()))


def publish(settings: Settings, signer: Signer) -> None:
    put(settings, public_key_key(settings.s3_prefix, signer.key_id), public_pem(signer.public))


def build_archive(
    settings: Settings, signers: Sequence[Signer | None], *, stream: str | None = None,
    files: int = 2, per_file: int = 5, dead_letter_at: int | None = 1, first_offset: int = 0,
    start: dt.datetime = START, reference: bool = True,
) -> Built:
    """A chain of ``len(signers)`` digests (digest ``i`` signed by ``signers[i]``, None:
    unsigned), each over ``files`` archive objects of ``per_file`` records (digest
    ``dead_letter_at`` also over one dead letter); public keys published; the last offset
    stored under the default consumer's digest reference."""
    stream = stream or settings.rabbitmq_stream_name
    built = Built(stream, [], [], first_offset - 1)
    previous: SignedDigest | None = None
    offset = first_offset
    for index, signer in enumerate(signers):
        moment = start + PERIOD * index
        first = offset
        entries = []
        for _ in range(files):
            entries.append(archive_object(settings, stream, moment, offset, per_file))
            offset += per_file
        if index == dead_letter_at:
            entries.append(dead_letter_object(settings, stream, moment, offset))
            offset += 1
        key = digest_key(settings.s3_prefix, stream, moment + PERIOD, first, offset - 1)
        digest = Digest(
            stream=stream, sequence=index, first_offset=first, last_offset=offset - 1,
            period_start=format_timestamp(moment), period_end=format_timestamp(moment + PERIOD),
            objects=tuple(entries),
            previous=None if previous is None else previous.link(built.digests[-1]),
            key_id=None, written_by="tests")
        previous = sign(digest, signer)
        put_digest(settings, key, previous)
        if signer is not None:
            publish(settings, signer)
        built.digests.append(key)
        built.objects.append([e.key for e in entries])
        built.last_offset = offset - 1
    if reference:
        store_reference(settings, stream, built.last_offset)
    return built


async def _store(settings: Settings, stream: str, name: str, offset: int) -> None:
    async with Producer(**settings.stream_client_args()) as producer:
        await producer.create_stream(stream, exists_ok=True)
    async with Consumer(**settings.stream_client_args()) as consumer:
        await consumer.store_offset(stream, name, offset)
        # store_offset has no reply: read it back.
        for _ in range(100):
            try:
                if await consumer.query_offset(stream, name) == offset:
                    return
            except OffsetNotFound:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"RabbitMQ did not keep offset {offset} for {name} on {stream}")


def store_reference(settings: Settings, stream: str, offset: int,
                    consumer_name: str = DEFAULT_CONSUMER_NAME) -> None:
    """Store ``offset`` under the digest reference, as the consumer does after a digest."""
    asyncio.run(_store(settings, stream, digest_reference(consumer_name), offset))


def get(settings: Settings, key: str) -> bytes:
    s3 = make_s3_client(settings)
    body: bytes = s3.get_object(Bucket=str(settings.s3_bucket), Key=key)["Body"].read()
    return body


def digest_keys(settings: Settings) -> list[str]:
    """The digest keys in the bucket (public keys left out), sorted."""
    listed = make_s3_client(settings).list_objects_v2(
        Bucket=str(settings.s3_bucket), Prefix=f"{settings.s3_prefix}digest/")
    return sorted(item["Key"] for item in listed.get("Contents", [])
                  if "/public-keys/" not in item["Key"])


def delete(settings: Settings, key: str) -> None:
    make_s3_client(settings).delete_object(Bucket=str(settings.s3_bucket), Key=key)


def read_digest(settings: Settings, key: str) -> SignedDigest:
    return parse_digest(get(settings, key))


def integrity(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    """``verify --integrity --json ARGS`` run as a user runs it: exit code and report."""
    done = archive_command(settings, "verify", "--integrity", "--json", *args)
    assert done.returncode in (0, 1), (done.returncode, done.stderr)
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def kinds(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, key) of each problem reported."""
    return [(p["kind"], p["key"]) for p in report["problems"]]
