"""``verify --integrity`` from the bucket's listing to the report: each stream's digests read
and judged (:mod:`.integrity`, :mod:`.integrity_keys`), then every object the digests of the
range list read and hashed at once, whatever its stream, then what no digest lists.

The stored digest references must be read from RabbitMQ *before* the listing: the consumer
writes a digest before it stores its offset, so a reference read first is never ahead of the
digests listed after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from audit_logging.archive.digest_format import ObjectEntry, digest_dir
from audit_logging.archive.integrity import KINDS, Chain, Problem, Read, Window, key_problems, walk
from audit_logging.archive.integrity_bucket import Bucket, Listing
from audit_logging.archive.integrity_keys import (
    KeyRing,
    Signatures,
    check_signatures,
    downgrades,
    published_keys,
)
from audit_logging.archive.integrity_objects import (
    Hashed,
    entry_problems,
    no_digest_problem,
    object_problems,
    reference_problems,
    unlisted,
)
from audit_logging.archive.progress import TransferProgress
from audit_logging.errors import shown

ProgressFactory = Callable[[int, int], TransferProgress]


@dataclasses.dataclass
class StreamResult:
    stream: str
    digests: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    # The offset stored under the digest reference; None: none stored (or no such stream).
    reference: int | None = None
    in_rabbitmq: bool = True
    objects_listed: int = 0
    objects_checked: int = 0
    bytes_checked: int = 0
    unsigned: int = 0
    key_ids: list[str] = dataclasses.field(default_factory=list)
    pending: list[str] = dataclasses.field(default_factory=list)
    before_chain: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Report:
    archive: str
    window: Window
    reference_name: str
    pinned: list[str]
    streams: list[StreamResult]
    problems: list[Problem]
    warnings: list[str]
    seconds: float = 0.0

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def bytes_checked(self) -> int:
        return sum(s.bytes_checked for s in self.streams)


@dataclasses.dataclass
class _Stream:
    result: StreamResult
    reads: list[Read]
    chain: Chain
    signatures: Signatures
    wanted: list[tuple[Read, ObjectEntry]]
    problems: list[Problem]


@dataclasses.dataclass(frozen=True)
class References:
    """What RabbitMQ holds under the digest reference, per stream."""

    name: str
    offsets: Mapping[str, int | None]
    absent: frozenset[str]  # streams RabbitMQ does not have


def check_archive(bucket: Bucket, configured: Sequence[str], references: References,
                  ring_pinned: KeyRing, *, window: Window, progress: ProgressFactory) -> Report:
    listing = bucket.listing()
    files = bucket.public_keys(listing.public_keys)
    published, problems = published_keys(bucket.prefix, files, ring_pinned.pinned)
    ring = KeyRing(ring_pinned.pinned, published)
    problems += [Problem("digest_unreadable", s.key, "under digest/ but in no stream's folder")
                 for s in listing.stray]
    streams = [_judge_chain(bucket, listing, name, ring, references)
               for name in sorted(set(configured) | listing.streams())]
    hashed = _hash(bucket, listing, streams, window, progress)
    present = _present(listing)
    for stream in streams:
        _judge_objects(bucket.prefix, listing, stream, hashed=hashed, present=present,
                       window=window, references=references)
        problems += stream.problems
    order = list(KINDS)
    problems.sort(key=lambda p: (p.stream or "", order.index(p.kind), p.key))
    report = Report(f"s3://{bucket.bucket}/{bucket.prefix}", window, references.name,
                    sorted(ring.pinned), [s.result for s in streams], problems, [])
    report.warnings = _warnings(report, ring, configured, references)
    return report


def _present(listing: Listing) -> set[str]:
    return {o.stored.key for objects in listing.objects.values() for o in objects}


def _judge_chain(bucket: Bucket, listing: Listing, name: str, ring: KeyRing,
                 references: References) -> _Stream:
    reads, problems = bucket.digests(name, listing.digests.get(name, []))
    problems += key_problems(name, reads)
    signatures = check_signatures(name, reads, ring)
    unreadable = {p.key: p for p in problems if p.kind == "digest_unreadable"}
    chain = walk(name, reads, signatures.troubled, unreadable)
    for key, note in chain.link_notes.items():
        signatures.problem_of[key].detail += f"; {note}"
    problems += signatures.problems + chain.problems + downgrades(name, chain.walked, ring)
    listed_problems, wanted = entry_problems(bucket.prefix, name, reads, chain.forked)
    problems += listed_problems
    walked = chain.walked
    result = StreamResult(
        name, len(reads),
        first_offset=min((r.digest.first_offset for r in walked), default=None),
        last_offset=chain.last_offset,
        reference=references.offsets.get(name), in_rabbitmq=name not in references.absent,
        objects_listed=len(wanted), unsigned=signatures.unsigned,
        key_ids=sorted(signatures.key_ids))
    return _Stream(result, reads, chain, signatures, wanted, problems)


def _hash(bucket: Bucket, listing: Listing, streams: Sequence[_Stream], window: Window,
          progress: ProgressFactory) -> dict[str, Hashed | None]:
    """Every object listed by a digest of the window, read and hashed, all streams at once."""
    entries = [entry for s in streams for read, entry in s.wanted if window.overlaps(read.digest)]
    present = _present(listing)
    shown_progress = progress(len(entries), sum(e.size for e in entries))
    try:
        return bucket.hash_all(entries, present.__contains__,
                               lambda entry: shown_progress.add(1, entry.size))
    finally:
        shown_progress.finish()


def _judge_objects(prefix: str, listing: Listing, stream: _Stream, *,
                   hashed: Mapping[str, Hashed | None], present: set[str], window: Window,
                   references: References) -> None:
    name, result, chain = stream.result.stream, stream.result, stream.chain
    for read, entry in stream.wanted:
        if entry.key in hashed:
            found = hashed[entry.key]
            result.objects_checked += 1
            result.bytes_checked += found.size if found is not None else 0
            stream.problems += object_problems(name, read, entry, found)
        elif entry.key not in present:  # outside the window: its presence is still checked
            stream.problems += object_problems(name, read, entry, None)
    objects = listing.objects.get(name, [])
    folder = digest_dir(prefix, name)
    found_by_reference = reference_problems(name, chain, result.reference, references.name,
                                            folder)
    if chain.walked:
        listed = {e.key for r in stream.reads for e in r.digest.objects}
        outside = unlisted(name, objects, listed, chain, window)
        result.pending, result.before_chain = outside.pending, outside.before_chain
        stream.problems += outside.problems
    else:
        lone = no_digest_problem(name, objects, window, folder)
        if found_by_reference and lone is not None:
            found_by_reference[0].objects += lone.objects
        elif lone is not None:
            found_by_reference.append(lone)
    stream.problems += found_by_reference


def _warnings(report: Report, ring: KeyRing, configured: Sequence[str],
              references: References) -> list[str]:
    warnings = []
    for result in report.streams:
        stream = shown(result.stream, 100)
        if result.unsigned:
            warnings.append(
                f"stream {stream}: {result.unsigned:,} unsigned digest(s): their hashes and "
                "links hold, but anyone able to write the bucket could have rewritten them "
                "(set AUDIT_LOG_SIGNING_KEY_FILE for the consumer)")
        if not result.in_rabbitmq:
            warnings.append(
                f"stream {stream} is not in RabbitMQ: whether its newest digests were removed "
                "cannot be checked")
        elif result.reference is None and (result.digests or result.stream in configured):
            warnings.append(
                f"stream {stream}: nothing is stored under {references.name!r} in RabbitMQ "
                "(no digest written yet, or another --consumer-name): whether its newest "
                "digests were removed cannot be checked")
    if not ring.is_pinned and any(r.key_ids for r in report.streams):
        warnings.append(
            "signatures were checked with the public keys published in the bucket: give your "
            "own copy with --public-key to rule out a chain rewritten and signed with another "
            "key published beside it")
    if report.window.start is not None or report.window.end is not None:
        warnings.append(
            "only the objects of digests whose period meets --since/--until were read and "
            "hashed (the others were checked for presence), and only objects last modified "
            "in that range were checked for a digest listing them")
    return warnings
