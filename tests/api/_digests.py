"""Digests of archive objects written to the real S3 as the consumer writes them (the format
of ``audit_logging.archive.digest_format``, signed with ``audit_logging.archive.signing``),
for tests that read them back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit_logging.archive import layout
from audit_logging.archive.digest_format import (
    Digest,
    ObjectEntry,
    SignedDigest,
    digest_key,
    public_key_key,
)
from audit_logging.archive.parquet import records_from_table
from audit_logging.archive.signing import Signer, load_signer, new_private_pem, public_pem
from audit_logging.settings import Settings
from tests._stack import s3_client


def new_signer(directory: Path, name: str = "signing.pem") -> Signer:
    path = directory / name
    path.write_bytes(new_private_pem())
    return load_signer(path)


def object_bytes(settings: Settings, key: str) -> bytes:
    body = s3_client(settings).get_object(Bucket=str(settings.s3_bucket), Key=key)["Body"]
    data: bytes = body.read()
    return data


def entry_of(settings: Settings, key: str) -> ObjectEntry:
    """The digest entry of the archive object ``key``, from its bytes in S3."""
    import io

    import pyarrow.parquet as pq

    data = object_bytes(settings, key)
    records = records_from_table(pq.read_table(io.BytesIO(data)))
    found = layout.parse_key(settings.s3_prefix, key)
    assert found is not None, key
    times = sorted(str(r["timestamp"]) for r in records)
    return ObjectEntry(key, "archive", hashlib.sha256(data).hexdigest(), len(data),
                       len(records), found.first_offset, found.last_offset, times[0], times[-1])


@dataclasses.dataclass
class Chain:
    """One stream's chain of digests, written one after another."""

    settings: Settings
    stream: str
    signer: Signer | None
    written: list[tuple[str, SignedDigest]] = dataclasses.field(default_factory=list)

    def publish_key(self) -> str:
        assert self.signer is not None
        key = public_key_key(self.settings.s3_prefix, self.signer.key_id)
        s3_client(self.settings).put_object(Bucket=str(self.settings.s3_bucket), Key=key,
                                            Body=public_pem(self.signer.public))
        return key

    def add(self, last_offset: int, objects: Sequence[str], when: dt.datetime,
            first_offset: int | None = None) -> str:
        """A digest of offsets after the previous one's up to ``last_offset``, listing the
        archive objects ``objects``, written at ``when``; returns its key."""
        previous = self.written[-1] if self.written else None
        first = first_offset if first_offset is not None else (
            0 if previous is None else previous[1].digest.last_offset + 1)
        digest = Digest(
            stream=self.stream,
            sequence=0 if previous is None else previous[1].digest.sequence + 1,
            first_offset=first,
            last_offset=last_offset,
            period_start=when.isoformat(),
            period_end=when.isoformat(),
            objects=tuple(entry_of(self.settings, key) for key in objects),
            previous=None if previous is None else previous[1].link(previous[0]),
            key_id=None if self.signer is None else self.signer.key_id,
            written_by="tests",
        )
        signature = None if self.signer is None else self.signer.sign(digest.signed_bytes())
        signed = SignedDigest(digest, signature)
        key = digest_key(self.settings.s3_prefix, self.stream, when, first, last_offset)
        self.put(key, signed.object_bytes())
        self.written.append((key, signed))
        return key

    def put(self, key: str, body: bytes) -> None:
        s3_client(self.settings).put_object(Bucket=str(self.settings.s3_bucket), Key=key,
                                            Body=body)

    def delete(self, key: str) -> None:
        s3_client(self.settings).delete_object(Bucket=str(self.settings.s3_bucket), Key=key)


def as_json(signed: SignedDigest) -> dict[str, Any]:
    return {"digest": signed.digest.as_json(), "signature": signed.signature}
