"""The checks of ``verify --integrity`` as pure functions over digests made in memory: each
kind of problem the chain walk, the object entries and the keys can show, on its own (the
same checks run against the real S3 and RabbitMQ in test_integrity*.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_logging.archive import integrity, layout
from audit_logging.archive.digest_format import (
    Digest,
    Kind,
    ObjectEntry,
    SignedDigest,
    digest_key,
    public_key_key,
)
from audit_logging.archive.integrity import (
    KINDS,
    Problem,
    Read,
    Stored,
    Window,
    key_problems,
    object_of,
    one_line,
    walk,
)
from audit_logging.archive.integrity_keys import (
    KeyRing,
    check_signatures,
    downgrades,
    published_keys,
)
from audit_logging.archive.integrity_objects import entry_problems, unlisted
from audit_logging.archive.progress import TransferProgress
from audit_logging.archive.signing import Signer, key_id, public_pem

PREFIX = "p/"
STREAM = "s"
DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def signer() -> Signer:
    private = Ed25519PrivateKey.generate()
    return Signer(private, key_id(private.public_key()))


def entry(first: int, last: int, kind: Kind = "archive", stream: str = STREAM) -> ObjectEntry:
    if kind == "archive":
        key = layout.archive_key(PREFIX, stream, "2026-03-02", first, last)
    else:
        key = f"{PREFIX}dead-letter/{stream}-{first:020d}-{last:020d}.ndjson"
    return ObjectEntry(key, kind, "0" * 64, 10, last - first + 1, first, last, None, None)


def chain(spans: Sequence[tuple[int, int]], by: Signer | None = None) -> list[Read]:
    """Digests over ``spans`` (first, last), each listing one object of its offsets, linked."""
    reads: list[Read] = []
    for sequence, (first, last) in enumerate(spans):
        previous = reads[-1].signed.link(reads[-1].key) if reads else None
        digest = Digest(STREAM, sequence, first, last, "2026-03-02T09:00:00Z",
                        "2026-03-02T10:00:00Z", (entry(first, last),), previous,
                        None if by is None else by.key_id, "tests")
        signed = SignedDigest(digest, None if by is None else by.sign(digest.signed_bytes()))
        reads.append(Read(digest_key(PREFIX, STREAM, DAY, first, last), signed, (first, last)))
    return reads


def kinds_of(problems: Sequence[Problem]) -> list[tuple[str, str]]:
    return [(p.kind, p.key) for p in problems]


def test_a_message_quoting_the_bucket_stays_one_line() -> None:
    assert one_line("unknown member 'a\nverify --integrity: no problem found'") == (
        "unknown member 'a\\nverify --integrity: no problem found'")
    assert one_line("\x1b[2K\u2028x" + "y" * 400).startswith("\\x1b[2K\\u2028x")
    assert len(one_line("y" * 400)) == 300


def test_every_kind_is_named_in_snake_case_with_a_meaning() -> None:
    for kind, meaning in KINDS.items():
        assert kind.replace("_", "").isalpha() and kind == kind.lower()
        assert meaning and "\n" not in meaning


def test_a_contiguous_chain_has_no_problem() -> None:
    reads = chain([(0, 9), (10, 19), (20, 29)])
    walked = walk(STREAM, reads, set(), {})
    assert walked.problems == [] and walked.gaps == []
    assert [r.key for r in walked.walked] == [r.key for r in reads]
    assert walked.last_offset == 29


def test_a_gap_between_two_digests() -> None:
    reads = chain([(0, 9), (10, 19)])
    later = chain([(0, 9), (10, 19), (25, 29)])[2]
    walked = walk(STREAM, [*reads, later], set(), {})
    assert kinds_of(walked.problems) == [("offset_gap", later.key)]
    assert [(first, last) for first, last, _ in walked.gaps] == [(20, 24)]


def test_an_overlap_between_two_digests() -> None:
    reads = chain([(0, 9), (5, 19)])
    assert kinds_of(walk(STREAM, reads, set(), {}).problems) == [("offset_overlap", reads[1].key)]


def test_a_sequence_that_jumps() -> None:
    reads = chain([(0, 9), (10, 19)])
    digest = dataclasses.replace(reads[1].digest, sequence=5)
    jumped = dataclasses.replace(reads[1], signed=SignedDigest(digest, None))
    assert kinds_of(walk(STREAM, [reads[0], jumped], set(), {}).problems) == [
        ("sequence_gap", jumped.key)]


def test_a_chain_whose_first_digest_names_none_but_is_not_sequence_0() -> None:
    [read] = chain([(0, 9)])
    digest = dataclasses.replace(read.digest, sequence=3)
    moved = dataclasses.replace(read, signed=SignedDigest(digest, None))
    assert kinds_of(walk(STREAM, [moved], set(), {}).problems) == [("sequence_gap", read.key)]


def test_the_first_digests_missing() -> None:
    reads = chain([(0, 9), (10, 19), (20, 29)])
    walked = walk(STREAM, reads[1:], set(), {})
    assert kinds_of(walked.problems) == [("missing_digest", reads[1].key)]
    assert [(first, last) for first, last, _ in walked.gaps] == [(0, 9)]


def test_a_digest_naming_no_previous_in_the_middle_starts_a_second_chain() -> None:
    reads = chain([(0, 9), (10, 19)])
    digest = dataclasses.replace(reads[1].digest, previous=None)
    restarted = dataclasses.replace(reads[1], signed=SignedDigest(digest, None))
    walked = walk(STREAM, [reads[0], restarted], set(), {})
    assert kinds_of(walked.problems) == [("fork", restarted.key)]
    assert "2 digests start the chain" in walked.problems[0].detail


def test_two_digests_naming_the_same_previous_one_are_a_fork() -> None:
    reads = chain([(0, 9), (10, 19), (20, 29)])
    twin_digest = dataclasses.replace(reads[1].digest, written_by="another")
    twin = Read(digest_key(PREFIX, STREAM, DAY + dt.timedelta(days=1), 10, 19),
                SignedDigest(twin_digest, None), (10, 19))
    walked = walk(STREAM, [*reads, twin], set(), {})
    # The one its successor names is walked on; the other is the fork.
    assert kinds_of(walked.problems) == [("fork", twin.key)]
    assert [r.key for r in walked.walked] == [r.key for r in reads]
    # The objects both list are the fork's, not each a problem of its own.
    assert entry_problems(PREFIX, STREAM, [twin, *reads], walked.forked)[0] == []
    assert kinds_of(entry_problems(PREFIX, STREAM, [twin, *reads])[0]) == [
        ("object_listed_twice", twin.digest.objects[0].key)]


def test_two_chains_started_are_a_fork() -> None:
    first = chain([(0, 9)])[0]
    again = Read(digest_key(PREFIX, STREAM, DAY + dt.timedelta(days=1), 0, 9), first.signed,
                 (0, 9))
    assert [kind for kind, _ in kinds_of(walk(STREAM, [first, again], set(), {}).problems)] == [
        "fork"]


def test_a_digest_stored_under_another_key() -> None:
    reads = chain([(0, 9), (10, 19)])
    elsewhere = dataclasses.replace(reads[1], named=(10, 18))
    assert kinds_of(key_problems(STREAM, [reads[0], elsewhere])) == [
        ("digest_key_mismatch", elsewhere.key)]
    copied = chain([(0, 9)])[0]
    assert kinds_of(key_problems("other", [copied])) == [("digest_key_mismatch", copied.key)]


def test_the_link_disagreeing_with_a_changed_digest() -> None:
    reads = chain([(0, 9), (10, 19), (20, 29)])
    digest = dataclasses.replace(reads[1].digest, written_by="someone else")
    changed = dataclasses.replace(reads[1], signed=SignedDigest(digest, None))
    walked = walk(STREAM, [reads[0], changed, reads[2]], set(), {})
    assert kinds_of(walked.problems) == [("broken_link", reads[2].key)]
    assert walked.problems[0].detail.endswith("differs in sha256")
    # Its own signature already a problem: the disagreement is told with that problem.
    walked = walk(STREAM, [reads[0], changed, reads[2]], {changed.key}, {})
    assert walked.problems == []
    assert reads[2].key in walked.link_notes[changed.key]


def test_objects_listed_outside_their_digest_or_twice() -> None:
    reads = chain([(0, 9), (10, 19)])
    outside = entry(8, 12)
    foreign = entry(10, 11, stream="other")
    misnamed = dataclasses.replace(entry(12, 13), first_offset=14)
    digest = dataclasses.replace(
        reads[1].digest, objects=(*reads[1].digest.objects, outside, foreign, misnamed,
                                  reads[0].digest.objects[0]))
    changed = dataclasses.replace(reads[1], signed=SignedDigest(digest, None))
    problems, wanted = entry_problems(PREFIX, STREAM, [reads[0], changed])
    assert kinds_of(problems) == [
        ("object_outside_digest", outside.key),
        ("object_outside_digest", foreign.key),
        ("object_outside_digest", misnamed.key),
        ("object_outside_digest", reads[0].digest.objects[0].key),
        ("object_listed_twice", reads[0].digest.objects[0].key),
    ]
    # What does not name an object of the stream is never read.
    assert {e.key for _, e in wanted} == {reads[0].digest.objects[0].key,
                                          reads[1].digest.objects[0].key, outside.key}


def test_objects_no_digest_lists() -> None:
    reads = chain([(0, 9), (20, 29)])
    walked = walk(STREAM, reads, set(), {})
    now = dt.datetime.now(dt.UTC)

    def stored(e: ObjectEntry) -> Stored:
        return Stored(e.key, 10, now)

    inside, in_gap, after = entry(3, 4), entry(12, 14, "dead_letter"), entry(30, 31)
    objects = [object_of(PREFIX, stored(e)) for e in (inside, in_gap, after)]
    listed = {e.key for r in reads for e in r.digest.objects}
    found = unlisted(STREAM, [o for o in objects if o], listed, walked, Window())
    assert kinds_of(found.problems) == [("unlisted_object", inside.key)]
    assert found.pending == [after.key]
    assert found.before_chain == []
    assert walked.problems[0].objects == [in_gap.key]  # the gap's problem counts it
    # Last modified outside --since/--until: not judged.
    past = Window(now - dt.timedelta(days=3), now - dt.timedelta(days=2))
    assert unlisted(STREAM, [o for o in objects if o], listed, walk(STREAM, reads, set(), {}),
                    past).problems == []


def test_objects_below_a_chains_first_digest_are_before_the_chain_not_problems() -> None:
    # An archive the consumer wrote before it wrote digests: the chain starts at offset 10.
    reads = chain([(10, 19), (20, 29)])
    now = dt.datetime.now(dt.UTC)
    older, straddling = entry(2, 5), entry(8, 12)
    objects = [object_of(PREFIX, Stored(e.key, 10, now)) for e in (older, straddling)]
    listed = {e.key for r in reads for e in r.digest.objects}
    found = unlisted(STREAM, [o for o in objects if o], listed, walk(STREAM, reads, set(), {}),
                     Window())
    assert found.before_chain == [older.key]
    # One that reaches into the chain's offsets is a problem.
    assert kinds_of(found.problems) == [("unlisted_object", straddling.key)]
    # A chain whose oldest digest names one before it (removed) has no "before".
    cut = walk(STREAM, reads[1:], set(), {})
    assert unlisted(STREAM, [o for o in objects if o], listed, cut, Window()).before_chain == []


def test_signatures() -> None:
    ours, theirs = signer(), signer()
    reads = chain([(0, 9), (10, 19)], by=ours)
    published = KeyRing({}, {ours.key_id: ours.public})
    assert check_signatures(STREAM, reads, published).problems == []
    forged = dataclasses.replace(reads[1].digest, written_by="someone else")
    bad = dataclasses.replace(reads[1], signed=SignedDigest(forged, reads[1].signed.signature))
    assert kinds_of(check_signatures(STREAM, [reads[0], bad], published).problems) == [
        ("bad_signature", bad.key)]
    pinned = KeyRing({theirs.key_id: theirs.public}, {ours.key_id: ours.public})
    result = check_signatures(STREAM, reads, pinned)
    assert kinds_of(result.problems) == [("unpinned_key", reads[0].key)]  # one for the key
    assert result.troubled == {r.key for r in reads}
    assert kinds_of(check_signatures(STREAM, reads, KeyRing({}, {})).problems) == [
        ("unknown_key", reads[0].key)]


def test_unsigned_digests() -> None:
    ours = signer()
    unsigned = chain([(0, 9), (10, 19)])
    result = check_signatures(STREAM, unsigned, KeyRing({}, {}))
    assert (result.problems, result.unsigned) == ([], 2)
    result = check_signatures(STREAM, unsigned, KeyRing({ours.key_id: ours.public}, {}))
    assert kinds_of(result.problems) == [("unsigned_digest", r.key) for r in unsigned]
    signed = chain([(0, 9)], by=ours)[0]
    after = chain([(0, 9), (10, 19)])[1]
    assert kinds_of(downgrades(STREAM, [signed, after], KeyRing({}, {}))) == [
        ("unsigned_after_signed", after.key)]


def test_published_keys() -> None:
    ours, theirs = signer(), signer()
    key = public_key_key(PREFIX, ours.key_id)
    found, problems = published_keys(PREFIX, {key: public_pem(ours.public)}, {})
    assert (list(found), problems) == ([ours.key_id], [])
    swapped = {key: public_pem(theirs.public)}
    assert kinds_of(published_keys(PREFIX, swapped, {})[1]) == [("public_key_id_mismatch", key)]
    assert kinds_of(published_keys(PREFIX, swapped, {ours.key_id: ours.public})[1]) == [
        ("public_key_differs", key)]
    odd = f"{PREFIX}digest/public-keys/readme.txt"
    files: dict[str, bytes | None] = {odd: b"x", public_key_key(PREFIX, "0" * 32): b"not pem",
                                      public_key_key(PREFIX, "1" * 32): None}
    assert [kind for kind, _ in kinds_of(published_keys(PREFIX, files, {})[1])] == [
        "public_key_unreadable"] * 3


@pytest.mark.parametrize(("start", "end", "overlaps"), [
    (None, None, True),
    (DAY, DAY + dt.timedelta(days=1), True),
    (DAY + dt.timedelta(hours=10), None, True),  # the period ends at 10:00
    (DAY + dt.timedelta(hours=10, microseconds=1), None, False),
    (None, DAY + dt.timedelta(hours=9), False),  # before is exclusive
    (None, DAY + dt.timedelta(hours=9, microseconds=1), True),
])
def test_the_window_meets_a_digest_period(start: dt.datetime | None, end: dt.datetime | None,
                                          overlaps: bool) -> None:
    digest = chain([(0, 9)])[0].digest
    assert Window(start, end).overlaps(digest) is overlaps


def test_the_progress_line_counts_objects_and_megabytes() -> None:
    shown_on = io.StringIO()
    progress = TransferProgress("verify --integrity", 4, 8_000_000, shown_on, enabled=True)
    progress.add(1, 2_000_000)
    line = progress.line()
    assert line.startswith("verify --integrity: 1/4 objects, 2.0/8.0 MB, ")
    assert "MB/s" in line and "left" in line
    progress.finish()
    assert shown_on.getvalue().startswith("\rverify --integrity: 1/4 objects")
    assert shown_on.getvalue().endswith("\r\x1b[K")
    quiet = io.StringIO()
    TransferProgress("verify --integrity", 1, 1, quiet, enabled=False).add(1, 1)
    assert quiet.getvalue() == ""


def test_the_readme_explains_every_problem_kind_and_no_other() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| problem | what it means |"):]
    table = table[: table.index("\n\n")]
    assert re.findall(r"^\| `([a-z_]+)` \|", table, re.M) == list(integrity.KINDS)
