"""The proof for one record: the archive object that holds it, that object's SHA-256 as S3
holds it now, and the signed digest that lists the object, so that an auditor can check the
record without reading the whole archive.

The object is read once, whole, from S3 (never from a cache): the SHA-256 given is that of
the very bytes the record was found in. Its digest is found by the offsets in its key
(:mod:`.digest_lookup`), read and parsed strictly. The digest's signature is not checked
here: the API's installation has no signing library, and an auditor must check it with a key
they pinned anyway, not take a server's word for it. What is said:

``covered``
    a digest lists the object with this SHA-256 and size;
``pending``
    no digest covers the object's offsets yet: the consumer writes the next with the first
    batch it archives once AUDIT_LOG_DIGEST_INTERVAL has passed, at a hand-over and when it
    stops (after a crash, the consumer that goes on lists the object in its next digest);
``not_archived``
    the record is in the index but in no archive object of its day yet;
``not_covered``
    the object's offsets come before the first digest of its stream's chain, which names no
    predecessor: it was archived before digests were written;
``mismatch``
    something an auditor must see: the digest lists the object with another SHA-256 or size,
    or does not list it, cannot be parsed, or does not hold what its key says; no digest
    holds the offsets though digests on both sides exist (one was removed); the first
    digest left names a predecessor (the ones before were removed); or the record the index
    holds differs from the archived one;
``unreadable``
    the record is in no readable archive object of its day, and an object of that day cannot
    be read (damaged, or not an archive file): the record may be in it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.dataset as ds

from audit_logging.archive.digest_format import (
    MAX_DIGEST_BYTES,
    DigestFormatError,
    SignedDigest,
    parse_digest,
    public_key_key,
)
from audit_logging.archive.digest_lookup import (
    DigestFinder,
    DigestName,
    LookupTooLongError,
    Placement,
)
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.parquet import ARROW_SCHEMA, records_from_table
from audit_logging.archive.search import log_id_day
from audit_logging.archive.store import (
    ArchiveStore,
    SearchTooLongError,
    UnreadableFileError,
)
from audit_logging.errors import AuditLoggingError, shown

Status = Literal["covered", "pending", "not_archived", "not_covered", "mismatch", "unreadable"]
STATUSES: Final = ("covered", "pending", "not_archived", "not_covered", "mismatch", "unreadable")
_ALL_COLUMNS: Final = tuple(ARROW_SCHEMA.names)
_UNREADABLE_NAMED: Final = 3  # unreadable objects an explanation names
_NEXT_DIGEST: Final = (
    " The consumer's next digest covers it: it writes one with the first batch it archives"
    " once AUDIT_LOG_DIGEST_INTERVAL has passed, when it hands the stream over and when it"
    " stops (after a crash, the consumer that goes on lists it in its next digest)."
)
_CHECK_YOURSELF: Final = (
    " To check without trusting this API: download the object and compare its SHA-256; "
    "download the digest, check that it lists the object with that SHA-256 and size, that the "
    "SHA-256 of the canonical JSON of its 'digest' member is the digest's sha256 here, and that "
    "the signature verifies over those bytes with the public key you pinned."
)


class ProofTooLongError(AuditLoggingError):
    """Making a proof passed its deadline (or its bound on S3 listings)."""


@dataclasses.dataclass(frozen=True)
class ObjectFacts:
    key: str
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class DigestFacts:
    key: str
    sha256: str
    signed: bool
    key_id: str | None
    public_key: str | None  # where the bucket publishes the signer's public key
    signature: str | None


@dataclasses.dataclass(frozen=True)
class Listed:
    """The object as the digest lists it."""

    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Proof:
    status: Status
    explanation: str
    object: ObjectFacts | None = None
    digest: DigestFacts | None = None
    listed: Listed | None = None

    def as_json(self) -> dict[str, Any]:
        def member(value: Any) -> dict[str, Any] | None:
            return None if value is None else dataclasses.asdict(value)

        return {
            "status": self.status,
            "object": member(self.object),
            "digest": member(self.digest),
            "listed": member(self.listed),
            "explanation": self.explanation,
        }


@dataclasses.dataclass(frozen=True)
class _Holder:
    file: ArchiveFile
    data: pa.Buffer
    record: dict[str, Any]


class RecordProofs:
    """Proofs for records of one archive (``store``). Each proof stops after ``seconds``."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    def of_indexed(self, record: Mapping[str, Any], *, seconds: float | None = None) -> Proof:
        """The proof for a record the index holds: it is archived in the files of its
        timestamp's day (the archive splits batches by record day), if it is archived yet."""
        deadline = _deadline(seconds)
        log_id = str(record["log_id"])
        day = dt.datetime.fromisoformat(str(record["timestamp"])).astimezone(dt.UTC).date()
        skipped: list[UnreadableFileError] = []
        holder = self._holder(log_id, [day], skipped, deadline)
        if holder is None:
            if skipped:
                return _unreadable(skipped)
            return Proof(
                "not_archived",
                f"The record is in the index but in no archive object of its day ({day}) yet:"
                " the consumer archives it with its batch (AUDIT_LOG_FLUSH_INTERVAL). If it"
                " stays so, the archive is missing it: 'python -m audit_logging.archive"
                " verify' reports such records.",
            )
        proof = self._prove(holder, deadline)
        differs = [name for name, value in record.items() if holder.record.get(name) != value]
        if differs:
            return dataclasses.replace(
                proof,
                status="mismatch",
                explanation=f"The record the index holds differs from the one archived in"
                f" {holder.file.key} (fields: {', '.join(differs)}): the archived object"
                f" is the one written by the consumer. As to the object: {proof.explanation}",
            )
        return proof

    def of_archived(
        self, log_id: str, *, seconds: float | None = None
    ) -> tuple[dict[str, Any], Proof] | None:
        """The archived record of ``log_id`` and its proof; None if the archive does not
        hold it (in the files of the day its UUIDv7 names and the days beside it, as
        :meth:`.search.ArchiveSearch.find` looks). Raises :class:`UnreadableFileError` when
        it is not found and one of those files cannot be read."""
        deadline = _deadline(seconds)
        day = log_id_day(log_id)
        if day is None:
            return None
        one_day = dt.timedelta(days=1)
        skipped: list[UnreadableFileError] = []
        holder = self._holder(log_id, [day, day - one_day, day + one_day], skipped, deadline)
        if holder is None:
            if skipped:
                raise skipped[0]
            return None
        return holder.record, self._prove(holder, deadline)

    def _holder(
        self,
        log_id: str,
        days: Sequence[dt.date],
        skipped: list[UnreadableFileError],
        deadline: float | None,
    ) -> _Holder | None:
        where = ds.field("log_id") == log_id
        try:
            for day in days:
                files = self.store.files(day, day)
                for file, data, table in self.store.read_fresh(
                    files, _ALL_COLUMNS, where, skipped, deadline
                ):
                    if table.num_rows:
                        (record,) = records_from_table(table.slice(0, 1))
                        return _Holder(file, data, record)
        except SearchTooLongError:
            raise ProofTooLongError("reading the record's archive objects passed the"
                                    " deadline") from None
        return None

    def _prove(self, holder: _Holder, deadline: float | None) -> Proof:
        file = holder.file
        facts = ObjectFacts(file.key, hashlib.sha256(holder.data).hexdigest(), holder.data.size)
        finder = DigestFinder(self.store.fs, self.store.bucket, self.store.prefix, file.stream,
                              deadline)
        try:
            placement = finder.place(file.first_offset)
        except LookupTooLongError as exc:
            raise ProofTooLongError(str(exc)) from None
        if placement.where in ("covered", "before"):
            assert placement.digest is not None
            return self._against_digest(file, facts, placement.digest, placement.where)
        return _without_digest(file, facts, placement)

    def _against_digest(
        self, file: ArchiveFile, facts: ObjectFacts, name: DigestName, where: str
    ) -> Proof:
        """The proof from the digest ``name``: the one covering the object's offsets, or
        (``before``) the first of the chain, which starts after them."""
        signed, problem = self._read_digest(name, file.stream)
        digest_facts = None if signed is None else _digest_facts(signed, name, self.store.prefix)
        if signed is None or problem is not None:
            return Proof("mismatch", f"The digest {name.key} {problem}.", facts, digest_facts)
        assert digest_facts is not None
        if where == "covered":
            return _listed(signed, facts, digest_facts)
        offsets = f"{file.first_offset}-{file.last_offset}"
        if signed.digest.previous is None:
            return Proof(
                "not_covered", f"The object holds offsets {offsets}, before the first digest"
                f" of stream {file.stream} ({name.key}, from offset {name.first_offset}),"
                " which names no predecessor: the object was archived before digests were"
                " written.", facts, digest_facts)
        return Proof(
            "mismatch", f"The object holds offsets {offsets}, before the first digest there"
            f" is of stream {file.stream} ({name.key}), which names a predecessor"
            f" ({shown(signed.digest.previous.key, 200)}): the digests before it have been"
            " removed.",
            facts, digest_facts)

    def _read_digest(
        self, name: DigestName, stream: str
    ) -> tuple[SignedDigest | None, str | None]:
        """The digest of ``name`` and what is wrong with it (None: nothing). S3 failing
        raises."""
        with self.store.fs.open_input_file(self.store.path(name.key)) as source:
            size = source.size()
            if size > MAX_DIGEST_BYTES:
                return None, f"is {size:,} bytes, larger than any digest"
            data = source.read()
        try:
            signed = parse_digest(data)
        except DigestFormatError as exc:
            return None, f"cannot be parsed: {shown(str(exc), 200)}"
        digest = signed.digest
        if digest.stream != stream:
            return signed, (f"is a digest of stream {shown(digest.stream, 100)}, not of"
                            f" {stream} as its key says: it was moved or replaced")
        said = (digest.first_offset, digest.last_offset)
        if said != (name.first_offset, name.last_offset):
            return signed, (f"holds offsets {said[0]}-{said[1]}, not the"
                            f" {name.first_offset}-{name.last_offset} its key names: it was"
                            " moved or replaced")
        return signed, None


def _without_digest(file: ArchiveFile, facts: ObjectFacts, placement: Placement) -> Proof:
    """The proof when no digest holds the object's offsets: pending, or one removed."""
    offsets = f"{file.first_offset}-{file.last_offset}"
    name = placement.digest
    if name is None:
        return Proof(
            "pending", f"No digest of stream {file.stream} exists yet: the consumer writes the"
            " first right after the first batch it archives (a consumer of a release without"
            " digests leaves every object so)." + _NEXT_DIGEST, facts)
    if placement.where == "after":
        return Proof(
            "pending", f"The object holds offsets {offsets} of stream {file.stream}; the newest"
            f" digest, {name.key}, covers up to offset {name.last_offset}." + _NEXT_DIGEST,
            facts)
    following = placement.following
    assert following is not None
    return Proof(
        "mismatch", f"No digest covers offsets {offsets} of stream {file.stream}: the digest"
        f" {name.key} ends at offset {name.last_offset} and the next there is, {following.key},"
        f" starts at {following.first_offset}. The digest between them has been removed.",
        facts)


def _listed(signed: SignedDigest, facts: ObjectFacts, digest_facts: DigestFacts) -> Proof:
    digest = signed.digest
    entry = next((e for e in digest.objects if e.key == facts.key), None)
    if entry is None or entry.kind != "archive":
        return Proof(
            "mismatch", f"The digest {digest_facts.key} covers the object's offsets but does"
            " not list it as an archive object: the object was not written by the consumer"
            " (added, or put in place of one it wrote).", facts, digest_facts)
    listed = Listed(entry.sha256, entry.size)
    if (entry.sha256, entry.size) != (facts.sha256, facts.size):
        return Proof(
            "mismatch", f"The object as S3 holds it now ({facts.size} bytes) is not what the"
            f" digest {digest_facts.key} lists ({entry.size} bytes, another SHA-256): it was"
            " changed after the digest was written.", facts, digest_facts, listed)
    signer = ("signed by key " + digest.key_id) if digest.key_id else "unsigned"
    return Proof(
        "covered", f"The digest {digest_facts.key} (sequence {digest.sequence}, {signer})"
        " lists the object with this SHA-256 and size. This API does not check the"
        " signature." + _CHECK_YOURSELF, facts, digest_facts, listed)


def _digest_facts(signed: SignedDigest, name: DigestName, prefix: str) -> DigestFacts:
    key_id = signed.digest.key_id
    return DigestFacts(
        key=name.key,
        sha256=signed.digest.sha256,
        signed=signed.signature is not None,
        key_id=key_id,
        public_key=None if key_id is None else public_key_key(prefix, key_id),
        signature=signed.signature,
    )


def _unreadable(skipped: Sequence[UnreadableFileError]) -> Proof:
    named = ", ".join(shown(s.key, 300) for s in skipped[:_UNREADABLE_NAMED])
    left = len(skipped) - _UNREADABLE_NAMED
    more = f" and {left} more" if left > 0 else ""
    return Proof(
        "unreadable", f"The record is in no readable archive object of its day, and"
        f" {len(skipped)} object(s) of that day cannot be read (damaged, or not an archive"
        f" file): {named}{more}. The record may be in one; 'python -m audit_logging.archive"
        " verify --integrity' tells whether it was altered.")


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
