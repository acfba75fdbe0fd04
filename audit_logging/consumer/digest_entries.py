"""What a digest says of one archive or dead-letter object (its entry, made from its bytes),
and the signature each object carries in its metadata so that a member taking over lists only
what a member holding the group's key wrote."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Final

import pyarrow.parquet as pq

from audit_logging.archive import digest_format as fmt
from audit_logging.archive.signing import Signer, verify_signature


def parquet_entry(key: str, data: bytes, first: int, last: int) -> fmt.ObjectEntry:
    """The digest entry of an archive object, from its bytes."""
    table = pq.read_table(io.BytesIO(data), columns=["timestamp"])
    times = [t for t in table.column("timestamp").to_pylist() if isinstance(t, str)]
    return fmt.ObjectEntry(
        key, "archive", hashlib.sha256(data).hexdigest(), len(data), table.num_rows,
        first, last, min(times, default=None), max(times, default=None),
    )  # fmt: skip


def dead_letter_entry(key: str, data: bytes, first: int, last: int) -> fmt.ObjectEntry:
    """The digest entry of a dead-letter object, from its bytes (times: the broker's)."""
    times = [
        str(json.loads(line).get("broker_timestamp"))
        for line in data.splitlines()
        if line.strip()
    ]
    return fmt.ObjectEntry(
        key, "dead_letter", hashlib.sha256(data).hexdigest(), len(data), len(times),
        first, last, min(times, default=None), max(times, default=None),
    )  # fmt: skip


# User metadata of each archive and dead-letter object: the consumer's signature over its key,
# SHA-256 and size, so that a member taking over lists only what a member of its group wrote.
VOUCH_KEY_ID: Final = "audit-logging-key-id"
VOUCH_SIGNATURE: Final = "audit-logging-signature"


def _vouched_bytes(key: str, sha256: str, size: int) -> bytes:
    return fmt.canonical({"key": key, "sha256": sha256, "size": size})


def vouch(signer: Signer | None, key: str, data: bytes) -> dict[str, str] | None:
    """The metadata that says this consumer wrote ``data`` at ``key`` (None: unsigned)."""
    if signer is None:
        return None
    signed = _vouched_bytes(key, hashlib.sha256(data).hexdigest(), len(data))
    return {VOUCH_KEY_ID: signer.key_id, VOUCH_SIGNATURE: signer.sign(signed)}


def vouched(signer: Signer, key: str, data: bytes, metadata: dict[str, str]) -> bool:
    """Whether ``metadata`` holds our key's signature of ``data`` at ``key``."""
    if metadata.get(VOUCH_KEY_ID) != signer.key_id:
        return False
    signed = _vouched_bytes(key, hashlib.sha256(data).hexdigest(), len(data))
    return verify_signature(signer.public, signed, metadata.get(VOUCH_SIGNATURE, "")[:200])


