"""What ``verify --integrity`` concludes about one stream's objects: the entries its digests
list (checked by name, then by the hash of the bytes read), the objects in the bucket that no
digest lists, and the chain's end against the offset the consumer stored in RabbitMQ.

An object no digest lists is a problem at or below the chain's last offset (counted in the
problem of a gap when it falls in one), and *pending* after it: the consumer lists it in its
next digest, at most one interval later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from audit_logging.archive.digest_format import ObjectEntry
from audit_logging.archive.integrity import (
    Chain,
    Problem,
    Read,
    Stored,
    StreamObject,
    Window,
    key_text,
    object_of,
)
from audit_logging.errors import shown


def entry_problems(prefix: str, stream: str, reads: Iterable[Read],
                   forked: set[str] | frozenset[str] = frozenset()) -> tuple[
        list[Problem], list[tuple[Read, ObjectEntry]]]:
    """The objects the digests list, checked by name: outside their digest's offsets, not an
    object of the stream, listed twice. Returns the problems and the entries to read (those
    that name an object of the stream; each once). An object listed by a digest of a fork
    (``forked``) and again by the chain is part of that fork's problem, not one of its own."""
    problems: list[Problem] = []
    wanted: list[tuple[Read, ObjectEntry]] = []
    listed_by: dict[str, str] = {}
    for read in sorted(reads, key=lambda r: r.key in forked):  # the chain's first
        digest = read.digest
        for entry in digest.objects:
            named = object_of(prefix, Stored(entry.key, entry.size))
            if named is None or (named.kind, named.stream, named.first_offset,
                                 named.last_offset) != (entry.kind, stream, entry.first_offset,
                                                        entry.last_offset):
                problems.append(Problem(
                    "object_outside_digest", entry.key,
                    f"listed by {key_text(read.key)} as {entry.kind} offsets "
                    f"{entry.first_offset}..{entry.last_offset} of stream {shown(stream, 100)},"
                    " which its key does not name (not read)", stream))
                continue
            if not digest.first_offset <= entry.first_offset <= entry.last_offset \
                    <= digest.last_offset:
                problems.append(Problem(
                    "object_outside_digest", entry.key,
                    f"offsets {entry.first_offset}..{entry.last_offset}, listed by "
                    f"{key_text(read.key)} covering {digest.first_offset}.."
                    f"{digest.last_offset}", stream))
            if entry.key in listed_by:
                if read.key in forked:
                    continue
                problems.append(Problem(
                    "object_listed_twice", entry.key,
                    f"listed by {key_text(listed_by[entry.key])} and by {key_text(read.key)}",
                    stream))
                continue
            listed_by[entry.key] = read.key
            wanted.append((read, entry))
    return problems, wanted


@dataclasses.dataclass(frozen=True)
class Hashed:
    """What an object's bytes are: None when the bucket does not hold it."""

    sha256: str
    size: int


def object_problems(stream: str, read: Read, entry: ObjectEntry,
                    found: Hashed | None) -> list[Problem]:
    if found is None:
        return [Problem("object_missing", entry.key,
                        f"listed by {key_text(read.key)} ({entry.size:,} bytes, "
                        f"{entry.rows:,} rows), not in the bucket", stream)]
    differs = []
    if found.size > entry.size:  # read no further: its sha256 is of the first bytes only
        differs.append(f"more than {entry.size:,} bytes, listed {entry.size:,} (not read "
                       "further)")
    else:
        if found.sha256 != entry.sha256:
            differs.append(f"sha256 {found.sha256}, listed {entry.sha256}")
        if found.size != entry.size:
            differs.append(f"{found.size:,} bytes, listed {entry.size:,}")
    if not differs:
        return []
    return [Problem("object_altered", entry.key,
                    f"{'; '.join(differs)} (by {key_text(read.key)})", stream)]


@dataclasses.dataclass
class Unlisted:
    problems: list[Problem] = dataclasses.field(default_factory=list)
    # After the chain's last offset: the consumer's next digest lists them.
    pending: list[str] = dataclasses.field(default_factory=list)
    # Below the offsets of a chain's first digest (one that names no digest before it): an
    # archive written before the consumer wrote digests. Shown, not a problem.
    before_chain: list[str] = dataclasses.field(default_factory=list)


def unlisted(stream: str, objects: Iterable[StreamObject], listed: set[str], chain: Chain,
             window: Window) -> Unlisted:
    """The stream's objects no digest lists: a problem at or below the chain's last offset
    (counted in a gap's problem when in its offsets; only objects last modified in
    ``window``), pending after it, before the chain below its first digest."""
    last = chain.last_offset
    found_now = Unlisted()
    problems = found_now.problems
    assert last is not None, "a stream without digests is no_digest's"
    oldest = min(chain.walked, key=lambda r: r.digest.first_offset)
    start = oldest.digest.first_offset if oldest.digest.previous is None else None
    for found in sorted(objects, key=lambda o: (o.first_offset, o.stored.key)):
        if found.stored.key in listed:
            continue
        if found.first_offset > last:
            found_now.pending.append(found.stored.key)
            continue
        if start is not None and found.last_offset < start:
            found_now.before_chain.append(found.stored.key)
            continue
        if not window.holds(found.stored.modified):
            continue
        gap = next((p for first, end, p in chain.gaps
                    if first <= found.first_offset and found.last_offset <= end), None)
        if gap is not None:
            gap.objects.append(found.stored.key)
            continue
        problems.append(Problem(
            "unlisted_object", found.stored.key,
            f"{found.kind} offsets {found.first_offset}..{found.last_offset}, at or below the "
            f"chain's last offset {last}, listed by no digest", stream))
    return found_now


def reference_problems(stream: str, chain: Chain, reference: int | None, reference_name: str,
                       digest_folder: str) -> list[Problem]:
    newest = chain.newest
    if reference is None:
        return []
    if newest is None:
        return [Problem("no_digest", digest_folder,
                        f"the consumer stored offset {reference} under {reference_name!r} on "
                        f"stream {shown(stream, 100)}, and the bucket holds no readable digest "
                        "of it", stream)]
    if newest.digest.last_offset < reference:
        return [Problem("chain_behind_reference", newest.key,
                        f"the chain ends at offset {newest.digest.last_offset} (sequence "
                        f"{newest.digest.sequence}), but the consumer stored offset "
                        f"{reference} under {reference_name!r}: the digests of offsets "
                        f"{newest.digest.last_offset + 1}..{reference} are not in the bucket",
                        stream)]
    return []


def no_digest_problem(stream: str, objects: Sequence[StreamObject], window: Window,
                      digest_folder: str) -> Problem | None:
    """A stream whose objects no digest covers at all (those last modified in ``window``)."""
    keys = [o.stored.key for o in objects if window.holds(o.stored.modified)]
    if not keys:
        return None
    return Problem("no_digest", digest_folder,
                   f"stream {shown(stream, 100)} has {len(keys):,} archive or dead-letter "
                   "object(s) and no readable digest", stream, keys)
