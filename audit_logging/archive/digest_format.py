"""The archive's digests: what one holds, where it is stored, and the bytes that are hashed
and signed.

Each stream (each partition of a super stream) has one chain. A digest lists the archive and
dead-letter objects the consumer wrote for the stream's offsets ``first_offset`` to
``last_offset`` (each with its SHA-256, size, rows, offsets and times), and links to the
digest before it by that digest's key, SHA-256, signature and key id. The offsets of one
digest start right after the previous one's, so a digest removed from the middle shows as a
gap; the consumer also stores the last offset a digest covers in RabbitMQ (the reference
:func:`digest_reference`), so removing the newest digests shows too.

What is hashed and signed is the canonical JSON of the ``digest`` member (sorted keys, no
spaces, UTF-8); the object stored is ``{"digest": {...}, "signature": "<base64>" | null}``,
also canonical.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

FORMAT: Final = "audit_logging.digest/1"
DIGEST_DIR: Final = "digest/"
PUBLIC_KEYS_DIR: Final = "digest/public-keys/"
# A digest of an hour at 10,000 records/s in files of 1,000 records lists 36,000 objects, about
# 12 MB: larger than this is not one of ours.
MAX_DIGEST_BYTES: Final = 256 * 1024 * 1024
Kind = Literal["archive", "dead_letter"]
KINDS: Final = ("archive", "dead_letter")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
# The first 32 hex digits of the SHA-256 of the raw public key (see .signing).
KEY_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
_MAX_TEXT: Final = 1024


class DigestFormatError(ValueError):
    """Bytes that are not a digest of this format; the message says which member is wrong."""


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest_dir(s3_prefix: str, stream: str) -> str:
    return f"{s3_prefix}{DIGEST_DIR}{stream}/"


def digest_key(s3_prefix: str, stream: str, written: dt.datetime, first: int, last: int) -> str:
    day = written.astimezone(dt.UTC)
    return (
        f"{digest_dir(s3_prefix, stream)}year={day:%Y}/month={day:%m}/day={day:%d}/"
        f"{stream}-{first:020d}-{last:020d}.json"
    )


def digest_key_re(s3_prefix: str, stream: str) -> re.Pattern[str]:
    """Matches a digest key of ``stream``; groups: first and last offset."""
    return re.compile(
        "^"
        + re.escape(digest_dir(s3_prefix, stream))
        + r"year=[0-9]{4}/month=[0-9]{2}/day=[0-9]{2}/"
        + re.escape(f"{stream}-")
        + r"([0-9]{20})-([0-9]{20})\.json\Z"
    )


def public_key_key(s3_prefix: str, key_id: str) -> str:
    return f"{s3_prefix}{PUBLIC_KEYS_DIR}{key_id}.pem"


def digest_reference(consumer_name: str) -> str:
    """The RabbitMQ offset-tracking reference under which the consumer group stores the last
    offset its digests cover ('/' never appears in a consumer name, so no group's own
    reference can be this one)."""
    return f"{consumer_name}/digest"


@dataclasses.dataclass(frozen=True)
class ObjectEntry:
    """One archive or dead-letter object as written."""

    key: str
    kind: Kind
    sha256: str
    size: int
    rows: int
    first_offset: int
    last_offset: int
    first_timestamp: str | None
    last_timestamp: str | None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Link:
    """The digest before, as the next one names it."""

    key: str
    sha256: str
    signature: str | None
    key_id: str | None
    last_offset: int

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Digest:
    stream: str
    sequence: int
    first_offset: int
    last_offset: int
    period_start: str
    period_end: str
    objects: tuple[ObjectEntry, ...]
    previous: Link | None
    # The key that signs this digest; None: unsigned.
    key_id: str | None
    written_by: str

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "stream": self.stream,
            "sequence": self.sequence,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "objects": [entry.as_json() for entry in self.objects],
            "previous": None if self.previous is None else self.previous.as_json(),
            "key_id": self.key_id,
            "written_by": self.written_by,
        }

    def signed_bytes(self) -> bytes:
        """What is hashed and signed."""
        return canonical(self.as_json())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.signed_bytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class SignedDigest:
    digest: Digest
    signature: str | None

    def object_bytes(self) -> bytes:
        return canonical({"digest": self.digest.as_json(), "signature": self.signature})

    def link(self, key: str) -> Link:
        digest = self.digest
        return Link(key, digest.sha256, self.signature, digest.key_id, digest.last_offset)


# -- reading --------------------------------------------------------------------------------


def _member(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise DigestFormatError(f"{where}: '{name}' is missing")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise DigestFormatError(f"{where}: '{name}' has the wrong type")
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        raise DigestFormatError(f"{where}: '{name}' is too long")
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value < 2**63:
        raise DigestFormatError(f"{where}: '{name}' is out of range")
    return value


def _sha(data: Mapping[str, Any], name: str, where: str) -> str:
    value: str = _member(data, name, str, where)
    if not _SHA256_RE.fullmatch(value):
        raise DigestFormatError(f"{where}: '{name}' is not a SHA-256 in hex")
    return value


def _key_id(data: Mapping[str, Any], name: str, where: str) -> str | None:
    value = _member(data, name, (str, type(None)), where)
    if value is not None and not KEY_ID_RE.fullmatch(value):
        raise DigestFormatError(f"{where}: '{name}' is not a key id")
    return value  # type: ignore[no-any-return]


def _exact(data: Any, names: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise DigestFormatError(f"{where} is not an object")
    extra = sorted(set(data) - set(names))
    if extra:
        raise DigestFormatError(f"{where}: unknown member '{str(extra[0])[:40]}'")
    return data


def _entry(data: Any, where: str) -> ObjectEntry:
    names = [field.name for field in dataclasses.fields(ObjectEntry)]
    item = _exact(data, names, where)
    kind = _member(item, "kind", str, where)
    if kind not in KINDS:
        raise DigestFormatError(f"{where}: 'kind' is neither archive nor dead_letter")
    entry = ObjectEntry(
        key=_member(item, "key", str, where),
        kind=kind,
        sha256=_sha(item, "sha256", where),
        size=_member(item, "size", int, where),
        rows=_member(item, "rows", int, where),
        first_offset=_member(item, "first_offset", int, where),
        last_offset=_member(item, "last_offset", int, where),
        first_timestamp=_member(item, "first_timestamp", (str, type(None)), where),
        last_timestamp=_member(item, "last_timestamp", (str, type(None)), where),
    )
    if entry.first_offset > entry.last_offset:
        raise DigestFormatError(f"{where}: 'first_offset' is after 'last_offset'")
    return entry


def _link(data: Any) -> Link | None:
    if data is None:
        return None
    where = "previous"
    item = _exact(data, [field.name for field in dataclasses.fields(Link)], where)
    signature = _member(item, "signature", (str, type(None)), where)
    return Link(
        key=_member(item, "key", str, where),
        sha256=_sha(item, "sha256", where),
        signature=signature,
        key_id=_key_id(item, "key_id", where),
        last_offset=_member(item, "last_offset", int, where),
    )


def parse_digest(data: bytes) -> SignedDigest:
    """A digest object's bytes, checked member by member (never trusted: the bucket may have
    been written by anyone)."""
    if len(data) > MAX_DIGEST_BYTES:
        raise DigestFormatError(f"{len(data):,} bytes is larger than any digest")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise DigestFormatError("not JSON") from None
    top = _exact(document, ("digest", "signature"), "the object")
    signature = _member(top, "signature", (str, type(None)), "the object")
    body = _exact(
        _member(top, "digest", dict, "the object"),
        (
            "format",
            "stream",
            "sequence",
            "first_offset",
            "last_offset",
            "period_start",
            "period_end",
            "objects",
            "previous",
            "key_id",
            "written_by",
        ),
        "digest",
    )
    if _member(body, "format", str, "digest") != FORMAT:
        raise DigestFormatError(f"digest: 'format' is not {FORMAT}")
    objects = _member(body, "objects", list, "digest")
    digest = Digest(
        stream=_member(body, "stream", str, "digest"),
        sequence=_member(body, "sequence", int, "digest"),
        first_offset=_member(body, "first_offset", int, "digest"),
        last_offset=_member(body, "last_offset", int, "digest"),
        period_start=_member(body, "period_start", str, "digest"),
        period_end=_member(body, "period_end", str, "digest"),
        objects=tuple(_entry(item, f"objects[{at}]") for at, item in enumerate(objects)),
        previous=_link(_member(body, "previous", (dict, type(None)), "digest")),
        key_id=_key_id(body, "key_id", "digest"),
        written_by=_member(body, "written_by", str, "digest"),
    )
    if digest.first_offset > digest.last_offset:
        raise DigestFormatError("digest: 'first_offset' is after 'last_offset'")
    if (signature is None) != (digest.key_id is None):
        raise DigestFormatError("digest: a signature needs a key_id and a key_id a signature")
    return SignedDigest(digest, signature)
