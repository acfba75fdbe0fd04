"""The consumer's side of tamper evidence: one chain of digests per stream, each listing the
archive and dead-letter objects written for a run of offsets (see
:mod:`audit_logging.archive.digest_format`).

The objects of a digest are the ones this member wrote (hashed from the bytes it uploaded),
plus, after a start or a takeover, those a predecessor wrote after its last digest: found
by listing the stream's objects past that digest's offsets, and by the records read again
that the archive already holds. So a crash between digests leaves no object out of the
chain; whoever is active next lists it.

Blocking (boto3): the service calls these from worker threads, one batch at a time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from audit_logging.archive import digest_format as fmt
from audit_logging.archive import layout
from audit_logging.archive.signing import Signer, public_pem, verify_signature
from audit_logging.consumer import dead_letter
from audit_logging.consumer.digest_entries import dead_letter_entry, parquet_entry, vouch, vouched
from audit_logging.consumer.ledger import MAX_FILE_SPAN
from audit_logging.consumer.s3 import S3Store, is_missing
from audit_logging.record import format_timestamp

_log = logging.getLogger("audit_logging.consumer")
# Day folders listed at once when a takeover looks for a predecessor's undigested objects.
_LISTED_AT_ONCE: Final = 8


def _moment(seconds: float) -> str:
    return format_timestamp(dt.datetime.fromtimestamp(seconds, dt.UTC))


@dataclasses.dataclass(eq=False)
class DigestChain:
    """One stream's chain, as this member continues it while active."""

    store: S3Store
    s3_prefix: str
    stream: str
    consumer_name: str
    interval: float
    signer: Signer | None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._published = False
        self.resume(None, None)

    def resume(self, stored: int | None, digested: int | None) -> None:
        """Reading starts again after ``stored`` (the group's offset); ``digested`` is the
        offset the group's last digest covers, as RabbitMQ keeps it. The chain is read from
        S3 before the next batch is archived."""
        with self._lock:
            self._stored = stored
            self._digested = digested
            self._loaded = False
            self._head: fmt.SignedDigest | None = None
            self._head_key: str | None = None
            # The first offset of the next digest; None until known (a chain's first digest
            # starts at the first offset archived).
            self._next_first: int | None = None
            self._pending: dict[str, fmt.ObjectEntry] = {}
            self._period_start = self.clock()

    # -- reading the chain back ------------------------------------------------------------

    def load(self) -> None:
        """Find the chain's newest digest and what was archived after it (worker thread)."""
        with self._lock:
            if self._loaded:
                return
            self._publish_key()
            self._head_key, self._head = self._newest()
            head_last = None if self._head is None else self._head.digest.last_offset
            if head_last is not None and self._digested is not None and head_last < self._digested:
                _log.error(
                    "the newest digest of %s in S3 covers offsets up to %d, but digests were "
                    "written up to %d: digests were removed from the bucket. The chain goes on "
                    "after %d; run verify --integrity",
                    self.stream, head_last, self._digested, self._digested,
                )  # fmt: skip
            known = [x for x in (head_last, self._digested) if x is not None]
            if known:
                self._next_first = max(known) + 1
            elif self._stored is not None:
                self._next_first = self._stored + 1
            if self._next_first is not None and (
                self._stored is not None and self._stored >= self._next_first
            ):
                self._take_undigested(self._next_first)
            self._loaded = True

    def _publish_key(self) -> None:
        if self.signer is None or self._published:
            return
        key = fmt.public_key_key(self.s3_prefix, self.signer.key_id)
        pem = public_pem(self.signer.public)
        written = self.store.put_create_only(key, pem, "application/x-pem-file")
        if not written and self.store.get(key) != pem:
            _log.error(
                "%s is not the public key of AUDIT_LOG_SIGNING_KEY_FILE although its name says "
                "so: someone replaced it; verify --integrity with a pinned key tells which "
                "digests hold",
                key,
            )
        self._published = True

    def _newest(self) -> tuple[str | None, fmt.SignedDigest | None]:
        """The digest with the highest offsets that can be this group's: no further ahead
        of what RabbitMQ knows than one batch (a digest is written before the offset is
        stored), and, if it names our key, signed by it. One that is not is logged and
        passed over: followed, it would stop the chain until its offsets came."""
        pattern = fmt.digest_key_re(self.s3_prefix, self.stream)
        found: list[tuple[int, str]] = []
        for key in self.store.list_keys(fmt.digest_dir(self.s3_prefix, self.stream)):
            match = pattern.match(key)
            if match:
                found.append((int(match.group(2)), key))
        known = [x for x in (self._stored, self._digested) if x is not None]
        bound = max(known) + MAX_FILE_SPAN if known else None
        for last, key in sorted(found, reverse=True):
            if bound is not None and last > bound:
                _log.error(
                    "digest %s claims offsets up to %d, far beyond the %d RabbitMQ knows "
                    "of: not ours, passed over (verify --integrity reports it)",
                    key, last, max(known),
                )  # fmt: skip
                continue
            try:
                head = fmt.parse_digest(self.store.get(key))
            except fmt.DigestFormatError as exc:
                _log.error(
                    "the newest digest %s cannot be read (%s); the chain goes on after it",
                    key, exc,
                )  # fmt: skip
                return None, None
            signer = self.signer
            if (
                signer is not None
                and head.digest.key_id == signer.key_id
                and not verify_signature(
                    signer.public, head.digest.signed_bytes(), head.signature or ""
                )
            ):
                _log.error(
                    "digest %s names the key of AUDIT_LOG_SIGNING_KEY_FILE but its signature "
                    "does not verify: forged, passed over (verify --integrity reports it)",
                    key,
                )
                continue
            return key, head
        return None, None

    def _take_undigested(self, first: int) -> None:
        """A predecessor archived offsets from ``first`` on and stopped before its next
        digest: list and hash what it wrote, in every record day and the dead letters."""
        days = self._day_folders()
        with concurrent.futures.ThreadPoolExecutor(_LISTED_AT_ONCE) as pool:
            listings = list(pool.map(lambda d: self._list_after(d, ".parquet", first), days))
        dead = self._list_after(dead_letter.dead_letter_dir(self.s3_prefix), ".ndjson", first)
        found = [key for keys in listings for key in keys] + dead
        for key in found:
            self._add_existing(key)
        if found:
            _log.info(
                "%d object(s) of %s were archived after its last digest (offset %d on) "
                "without one; the next digest lists them",
                len(found), self.stream, first - 1,
            )  # fmt: skip

    def _day_folders(self) -> list[str]:
        folders = [self.s3_prefix]
        for _ in range(3):
            folders = [
                sub
                for folder in folders
                for sub in self.store.list_folders(folder)
                if sub[len(folder):].startswith(("year=", "month=", "day="))
            ]  # fmt: skip
        return folders

    def _list_after(self, folder: str, suffix: str, first: int) -> list[str]:
        start = f"{folder}{self.stream}-{max(0, first - MAX_FILE_SPAN):020d}"
        keys = []
        for key in self.store.list_keys(f"{folder}{self.stream}-", start):
            offsets = _offsets(key, self.stream)
            if key.endswith(suffix) and offsets is not None and offsets[1] >= first:
                keys.append(key)
        return keys

    def _add_existing(self, key: str) -> None:
        if key in self._pending:
            return
        suffix = ".parquet" if key.endswith(".parquet") else ".ndjson"
        offsets = _offsets(key, self.stream)
        if offsets is None:
            return
        try:
            data, metadata = self.store.get_with_metadata(key)
        except Exception as exc:
            if is_missing(exc):
                return
            raise
        if self.signer is not None and not vouched(self.signer, key, data, metadata):
            # Not written by a member holding our key: someone else put it in the bucket (or
            # changed it). Listing it would sign it as ours; verify --integrity names it.
            _log.error(
                "%s holds offsets %d-%d of %s but does not carry the signature of "
                "AUDIT_LOG_SIGNING_KEY_FILE that the consumer gives every object it writes: "
                "not listed in a digest (verify --integrity reports it)",
                key, offsets[0], offsets[1], self.stream,
            )  # fmt: skip
            return
        make = parquet_entry if suffix == ".parquet" else dead_letter_entry
        try:
            entry = make(key, data, *offsets)
        except Exception as exc:  # noqa: BLE001 - listed all the same, by its hash
            _log.warning("%s cannot be read as %s (%s); listed by its hash", key, suffix, exc)
            kind: fmt.Kind = "archive" if suffix == ".parquet" else "dead_letter"
            digest = hashlib.sha256(data).hexdigest()
            entry = fmt.ObjectEntry(key, kind, digest, len(data), 0, *offsets, None, None)
        self._pending[key] = entry

    # -- what is archived --------------------------------------------------------------------

    def vouch(self, key: str, data: bytes) -> dict[str, str] | None:
        """The metadata to write ``data`` at ``key`` with (see :func:`vouch`)."""
        return vouch(self.signer, key, data)

    def begin(self, first_offset: int) -> None:
        """A batch starting at ``first_offset`` is archived: a chain's first digest starts
        with the first batch."""
        with self._lock:
            if self._next_first is None:
                self._next_first = first_offset

    def add(self, entry: fmt.ObjectEntry) -> None:
        """An object this member uploaded."""
        with self._lock:
            self._pending[entry.key] = entry

    def add_existing(self, keys: Iterable[str]) -> None:
        """Objects S3 already held for records read again: listed unless a digest has them."""
        with self._lock:
            for key in keys:
                offsets = _offsets(key, self.stream)
                if offsets is None or key in self._pending:
                    continue
                if self._next_first is not None and offsets[1] < self._next_first:
                    continue  # an earlier digest lists it
                self._add_existing(key)

    def due(self) -> bool:
        """A digest is due after each interval, and right after the first batch of a new
        chain: until a chain has its first digest, nothing would show the objects a member
        killed meanwhile wrote past the stored offset."""
        if self._head is None:
            return self._loaded
        return self.clock() - self._period_start >= self.interval

    def seal(self, committed: int) -> int | None:
        """Write the digest of offsets up to ``committed`` (all archived); the offset it
        covers, or None when there was nothing new to cover."""
        # Read the chain first if no batch did since the last resume (a member made active
        # again and stopped before its next batch): what it archived before is then found
        # in S3 and listed.
        self.load()
        with self._lock:
            if not self._loaded or self._next_first is None:
                return None
            # An object found again (a predecessor's, in other batches than ours) may reach
            # past ``committed``: the digest stops before it, so the next one lists it whole.
            # Only one no larger than a batch: a larger one is no consumer's, and waiting for
            # its offsets would hold the chain back for as long as whoever put it wants.
            reaching = [
                e.first_offset
                for e in self._pending.values()
                if self._next_first <= e.first_offset <= committed < e.last_offset
                and e.last_offset - e.first_offset <= MAX_FILE_SPAN
            ]  # fmt: skip
            committed = min([committed, *(first - 1 for first in reaching)])
            if committed < self._next_first:
                return None
            now = self.clock()
            entries = sorted(
                (e for e in self._pending.values() if e.last_offset <= committed),
                key=lambda e: (e.first_offset, e.key),
            )
            head, head_key = self._head, self._head_key
            previous = None if head is None or head_key is None else head.link(head_key)
            digest = fmt.Digest(
                stream=self.stream,
                sequence=0 if head is None else head.digest.sequence + 1,
                first_offset=self._next_first,
                last_offset=committed,
                period_start=_moment(self._period_start),
                period_end=_moment(now),
                objects=tuple(entries),
                previous=previous,
                key_id=None if self.signer is None else self.signer.key_id,
                written_by=self.consumer_name,
            )
            signature = None if self.signer is None else self.signer.sign(digest.signed_bytes())
            signed = fmt.SignedDigest(digest, signature)
            key = fmt.digest_key(
                self.s3_prefix, self.stream, dt.datetime.fromtimestamp(now, dt.UTC),
                digest.first_offset, digest.last_offset,
            )  # fmt: skip
            if not self.store.put_create_only(key, signed.object_bytes(), "application/json"):
                # Only a member that lost the group while writing gets here: leave the chain
                # as it is in S3 and read it again.
                _log.warning("%s already exists; the chain is read again from S3", key)
                self._loaded = False
                return None
            for entry in entries:
                del self._pending[entry.key]
            self._head, self._head_key = signed, key
            self._next_first = committed + 1
            self._period_start = now
            _log.info(
                "digest %s: offsets %d-%d, %d object(s), %s",
                key, digest.first_offset, committed, len(entries),
                "signed by key " + digest.key_id if digest.key_id else "unsigned",
            )  # fmt: skip
            return committed


def _offsets(key: str, stream: str) -> tuple[int, int] | None:
    """The offsets an archive or dead-letter file of ``stream`` names
    (``{stream}-{first:020d}-{last:020d}.parquet`` or ``.ndjson``), else None."""
    name = key.rpartition("/")[2]
    head = f"{stream}-"
    suffix = next((x for x in (layout.PARQUET_SUFFIX, ".ndjson") if name.endswith(x)), None)
    if suffix is None or not name.startswith(head):
        return None
    parts = name[len(head) : -len(suffix)].split("-")
    if len(parts) != 2 or not all(len(p) == 20 and p.isascii() and p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])
