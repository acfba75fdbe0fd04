"""What ``verify --integrity`` concludes from one stream's digests: pure functions over what
was read (the reading is :mod:`.integrity_bucket`'s, the signatures :mod:`.integrity_keys`',
the objects :mod:`.integrity_objects`').

One stream's digests are put in chain order (by the offsets their bodies claim) and each is
checked against the one before it: the link it holds (key, SHA-256, signature, key id, last
offset), consecutive offsets and sequence numbers. A digest named as previous that the bucket
does not hold is one ``missing_digest`` problem, not a gap, a sequence jump and a broken link
besides; the objects whose offsets fall in such a gap are counted in that problem rather than
each reported as unlisted. A digest that holds a bad signature carries the disagreement of
its successor's link with it in its own problem, for the same reason: one tamper, one
problem.

What is not proven here: that an object's rows are the records the stream carried (the
digest says what the consumer wrote, not what it read), nor anything of an object written
after the chain's last digest (``pending``: the consumer writes the next digest at most one
interval later).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from audit_logging.archive import layout
from audit_logging.archive.digest_format import Digest, Kind, SignedDigest
from audit_logging.errors import shown

# Each kind of problem, with what it means (the report's and the README's words).
KINDS: Final = {
    "digest_unreadable": "an object in a stream's digest folder that is no digest (name, "
    "size or content)",
    "digest_key_mismatch": "a digest stored under a key naming another stream or other "
    "offsets than its body",
    "missing_digest": "a digest names as its previous one a digest the bucket does not hold",
    "broken_link": "a digest's link (key, sha256, signature, key id, last offset) differs "
    "from the digest before it",
    "offset_gap": "offsets between two consecutive digests that neither covers",
    "offset_overlap": "a digest starting at or before the last offset of the one before it",
    "sequence_gap": "sequence numbers that do not follow each other (or a chain not "
    "starting at 0)",
    "fork": "two digests naming the same previous digest (or two starting the chain)",
    "bad_signature": "a signature that the key of its key id does not verify",
    "unpinned_key": "a digest signed by a key that no --public-key gives",
    "unknown_key": "a digest signed by a key that is neither pinned nor published in the "
    "bucket",
    "unsigned_digest": "an unsigned digest while keys are pinned",
    "unsigned_after_signed": "an unsigned digest after a signed one",
    "public_key_unreadable": "an object under digest/public-keys/ that is not KEY_ID.pem "
    "holding an Ed25519 public key",
    "public_key_id_mismatch": "a published public key whose key id is not its file name",
    "public_key_differs": "a published public key that is not the pinned key of its id",
    "object_missing": "an object a digest lists that the bucket does not hold",
    "object_altered": "an object whose sha256 or size is not what its digest lists",
    "object_outside_digest": "an object listed with offsets outside its digest's, or a key "
    "that is no object of the digest's stream",
    "object_listed_twice": "an object listed twice (by two digests, or twice by one)",
    "unlisted_object": "an archive or dead-letter object that no digest lists, at or below "
    "the chain's last offset",
    "chain_behind_reference": "the chain ends before the offset the consumer stored under "
    "its digest reference in RabbitMQ",
    "no_digest": "a stream with objects, or with a stored digest reference, but no digest",
}
_DEAD_LETTER_RE: Final = re.compile(r"dead-letter/(.+)-([0-9]{20})-([0-9]{20})\.ndjson")
SAMPLE: Final = 10
_KEY_SHOWN: Final = 300


def key_text(key: str) -> str:
    """A key from the bucket (anyone may have named it) as it may appear in a line."""
    return shown(key, _KEY_SHOWN)


def one_line(text: str, limit: int = 300) -> str:
    """A message that may quote the bucket's bytes, bounded and with no character that could
    start a line of its own or move the cursor (those are escaped)."""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclasses.dataclass
class Problem:
    kind: str
    key: str
    detail: str
    stream: str | None = None
    # Objects counted in this problem instead of each being reported (a gap's objects).
    objects: list[str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        tail = ""
        if self.objects:
            sample = ", ".join(key_text(k) for k in self.objects[:SAMPLE])
            more = len(self.objects) - SAMPLE
            tail = (f"; {len(self.objects):,} object(s) in those offsets listed by no digest: "
                    f"{sample}{f' (and {more:,} more)' if more > 0 else ''}")
        return f"{self.kind}: {key_text(self.key)}: {self.detail}{tail}"


@dataclasses.dataclass(frozen=True)
class Stored:
    """An object as the bucket's listing shows it."""

    key: str
    size: int
    modified: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class StreamObject:
    """An archive or dead-letter object in the bucket, as its key names it."""

    stored: Stored
    kind: Kind
    stream: str
    first_offset: int
    last_offset: int


def object_of(prefix: str, stored: Stored) -> StreamObject | None:
    """The archive or dead-letter object ``stored`` is, by its key; None for anything else."""
    archived = layout.parse_key(prefix, stored.key, stored.size)
    if archived is not None:
        return StreamObject(stored, "archive", archived.stream, archived.first_offset,
                            archived.last_offset)
    if stored.key.startswith(prefix):
        match = _DEAD_LETTER_RE.fullmatch(stored.key[len(prefix):])
        if match is not None:
            return StreamObject(stored, "dead_letter", match[1], int(match[2]), int(match[3]))
    return None


@dataclasses.dataclass(frozen=True)
class Read:
    """A digest read from the bucket and parsed."""

    key: str
    signed: SignedDigest
    # The first and last offsets its key names.
    named: tuple[int, int]

    @property
    def digest(self) -> Digest:
        return self.signed.digest


@dataclasses.dataclass(frozen=True)
class Window:
    """``--since``/``--until``: None is open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def holds(self, moment: dt.datetime | None) -> bool:
        if moment is None:
            return True
        return ((self.start is None or moment >= self.start)
                and (self.end is None or moment < self.end))

    def overlaps(self, digest: Digest) -> bool:
        """Whether the digest's period meets the window (a period that does not parse
        does: its objects are checked rather than passed over)."""
        try:
            start = _moment(digest.period_start)
            end = _moment(digest.period_end)
        except ValueError:
            return True
        return ((self.end is None or start < self.end)
                and (self.start is None or end >= self.start))


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclasses.dataclass
class Chain:
    """One stream's digests in chain order, and what their links prove."""

    walked: list[Read]
    problems: list[Problem]
    # Offsets no digest covers that a problem already names: (first, last, that problem).
    gaps: list[tuple[int, int, Problem]]
    # For a digest with a signature problem: how its successor's link disagrees with it.
    link_notes: dict[str, str]
    # Digests of a fork left out of the walk.
    forked: set[str] = dataclasses.field(default_factory=set)

    @property
    def last_offset(self) -> int | None:
        return max((r.digest.last_offset for r in self.walked), default=None)

    @property
    def newest(self) -> Read | None:
        return max(self.walked, key=lambda r: r.digest.last_offset, default=None)


def key_problems(stream: str, reads: Iterable[Read]) -> list[Problem]:
    """Digests whose key names other offsets or another stream than their body."""
    found = []
    for read in reads:
        digest = read.digest
        if digest.stream != stream or read.named != (digest.first_offset, digest.last_offset):
            found.append(Problem(
                "digest_key_mismatch", read.key,
                f"its key names stream {shown(stream, 100)} offsets {read.named[0]}.."
                f"{read.named[1]}, its body stream {shown(digest.stream, 100)} offsets "
                f"{digest.first_offset}..{digest.last_offset} (sequence {digest.sequence})",
                stream))
    return found


def walk(stream: str, reads: Sequence[Read], signature_trouble: set[str],
         unreadable: Mapping[str, Problem]) -> Chain:
    """The chain of ``reads`` (one stream's parsed digests) and the problems of its links.
    ``signature_trouble``: keys of digests whose signature is already a problem;
    ``unreadable``: the stream's digest objects that are no digest, with their problem (a
    digest naming one as its previous is not missing one: that problem says it all)."""
    ours = [r for r in reads if r.digest.stream == stream]  # the others: key_problems
    chain = Chain([], [], [], {})
    dropped = chain.forked = _forks(stream, ours, chain)
    present = {r.key for r in reads}
    name_agrees = {r.key for r in ours
                   if r.named == (r.digest.first_offset, r.digest.last_offset)}
    order = sorted((r for r in ours if r.key not in dropped),
                   key=lambda r: (r.digest.first_offset, r.digest.sequence, r.key))
    before: Read | None = None
    context = _Walk(stream, present, name_agrees, signature_trouble, unreadable, chain)
    for read in order:
        if before is None:
            _first(context, read)
        else:
            _link(context, before, read)
        chain.walked.append(read)
        before = read
    return chain


def _forks(stream: str, reads: Sequence[Read], chain: Chain) -> set[str]:
    """Digests that name the same previous digest: one is walked (the one a successor
    names, else the first), the others reported and left out of the walk."""
    groups: dict[str | None, list[Read]] = {}
    for read in reads:
        previous = read.digest.previous
        groups.setdefault(None if previous is None else previous.key, []).append(read)
    named = {key for key in groups if key is not None}
    dropped: set[str] = set()
    for named_key, group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda r: (r.digest.first_offset, r.key))
        kept = next((r for r in group if r.key in named), group[0])
        others = [r for r in group if r is not kept]
        what = ("start the chain" if named_key is None
                else f"name {key_text(named_key)} as previous")
        chain.problems.append(Problem(
            "fork", others[0].key,
            f"{len(group)} digests {what}: {', '.join(key_text(r.key) for r in group)} "
            f"(the chain goes on from {key_text(kept.key)})", stream))
        dropped.update(r.key for r in others)
    return dropped


def _first(context: _Walk, read: Read) -> None:
    stream, chain = context.stream, context.chain
    digest = read.digest
    link = digest.previous
    if link is None:
        if digest.sequence != 0:
            chain.problems.append(Problem(
                "sequence_gap", read.key,
                f"the chain's first digest has sequence {digest.sequence}, not 0", stream))
        return
    if link.key in context.unreadable:
        chain.gaps.append((0, digest.first_offset - 1, context.unreadable[link.key]))
        return
    if link.key not in context.present:
        problem = Problem(
            "missing_digest", read.key,
            f"the oldest digest in the bucket (sequence {digest.sequence}, offsets "
            f"{digest.first_offset}..{digest.last_offset}) names {key_text(link.key)} as the "
            f"one before it, which the bucket does not hold: {digest.sequence} digest(s) "
            f"missing at the chain's start, offsets up to {link.last_offset}", stream)
        chain.problems.append(problem)
        chain.gaps.append((0, digest.first_offset - 1, problem))
        return
    chain.problems.append(Problem(
        "broken_link", read.key,
        f"names {key_text(link.key)} as the digest before it, but no digest of the chain "
        f"precedes it (sequence {digest.sequence}, first offset {digest.first_offset})",
        stream))


@dataclasses.dataclass(frozen=True)
class _Walk:
    stream: str
    present: set[str]  # every digest key read
    name_agrees: set[str]  # digests whose key names their body's offsets
    signature_trouble: set[str]
    unreadable: Mapping[str, Problem]
    chain: Chain


def _link(context: _Walk, before: Read, read: Read) -> None:
    stream, present, chain = context.stream, context.present, context.chain
    name_agrees, signature_trouble = context.name_agrees, context.signature_trouble
    prior, digest = before.digest, read.digest
    link = digest.previous
    expected = prior.last_offset + 1
    if link is not None and link.key in context.unreadable:
        if digest.first_offset > expected:
            chain.gaps.append((expected, digest.first_offset - 1, context.unreadable[link.key]))
        return
    if link is not None and link.key != before.key and link.key not in present \
            and before.key in name_agrees:
        missing = digest.sequence - prior.sequence - 1
        problem = Problem(
            "missing_digest", read.key,
            f"names {key_text(link.key)} (last offset {link.last_offset}) as the digest "
            f"before it, which the bucket does not hold; the one before it in the bucket is "
            f"{key_text(before.key)} (sequence {prior.sequence}, last offset "
            f"{prior.last_offset}): {max(missing, 1)} digest(s) missing, offsets {expected}.."
            f"{digest.first_offset - 1} covered by none", stream)
        chain.problems.append(problem)
        if digest.first_offset > expected:
            chain.gaps.append((expected, digest.first_offset - 1, problem))
        return
    differs = _link_differences(before, read, name_agrees)
    if differs:
        if before.key in signature_trouble:
            chain.link_notes[before.key] = (
                f"the next digest {key_text(read.key)} names another {', '.join(differs)} "
                "for it: it changed after its successor was written")
        else:
            chain.problems.append(Problem(
                "broken_link", read.key,
                f"its link to {key_text(before.key)} (sequence {prior.sequence}) differs in "
                f"{', '.join(differs)}", stream))
    if digest.first_offset > expected:
        problem = Problem(
            "offset_gap", read.key,
            f"starts at offset {digest.first_offset}, after {key_text(before.key)} ending at "
            f"{prior.last_offset}: offsets {expected}..{digest.first_offset - 1} covered by "
            "no digest", stream)
        chain.problems.append(problem)
        chain.gaps.append((expected, digest.first_offset - 1, problem))
    elif digest.first_offset < expected:
        chain.problems.append(Problem(
            "offset_overlap", read.key,
            f"starts at offset {digest.first_offset}, while {key_text(before.key)} covers up "
            f"to {prior.last_offset}", stream))
    if digest.sequence != prior.sequence + 1:
        chain.problems.append(Problem(
            "sequence_gap", read.key,
            f"has sequence {digest.sequence} after {key_text(before.key)}'s "
            f"{prior.sequence}", stream))


def _link_differences(before: Read, read: Read, name_agrees: set[str]) -> list[str]:
    link = read.digest.previous
    if link is None:
        return ["previous (it names none)"]
    prior = before.digest
    differs = []
    # A digest under a key that is not its own is reported as such; its successor naming
    # the key it should have is no second problem.
    if before.key in name_agrees and link.key != before.key:
        differs.append("key")
    if link.sha256 != prior.sha256:
        differs.append("sha256")
    if link.signature != before.signed.signature:
        differs.append("signature")
    if link.key_id != prior.key_id:
        differs.append("key_id")
    if link.last_offset != prior.last_offset:
        differs.append("last_offset")
    return differs
