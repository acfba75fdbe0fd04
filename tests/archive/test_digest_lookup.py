"""Finding the digest that covers an offset, over digest keys in the real S3 server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from audit_logging.archive import digest_lookup
from audit_logging.archive.digest_format import digest_key
from audit_logging.archive.digest_lookup import DigestFinder, LookupTooLongError
from audit_logging.archive.store import s3_filesystem
from audit_logging.settings import Settings
from tests._stack import s3_client

pytestmark = pytest.mark.services

STREAM = "orders-audit-1"  # a partition's name: '-' inside
UTC = dt.UTC
PER_DIGEST = 10


@dataclasses.dataclass
class Chain:
    settings: Settings
    keys: list[str]  # digest n covers offsets 10n to 10n + 9

    def finder(self, stream: str = STREAM, deadline: float | None = None) -> DigestFinder:
        return DigestFinder(s3_filesystem(self.settings), str(self.settings.s3_bucket),
                            self.settings.s3_prefix, stream, deadline)

    def put(self, key: str, body: bytes = b"") -> None:
        s3_client(self.settings).put_object(Bucket=str(self.settings.s3_bucket), Key=key,
                                            Body=body)

    def delete(self, key: str) -> None:
        s3_client(self.settings).delete_object(Bucket=str(self.settings.s3_bucket), Key=key)


def written_at(n: int) -> dt.datetime:
    """Digest n's writing: every 7 days from 2024-11-20, so the chain spans three years, many
    months and days; two a day now and then."""
    return dt.datetime(2024, 11, 20, 6, tzinfo=UTC) + dt.timedelta(days=7 * n - (n % 5 == 0))


@pytest.fixture
def chain(stack_settings: Settings, s3_prefix: str) -> Chain:
    settings = dataclasses.replace(stack_settings, s3_prefix=s3_prefix)
    made = Chain(settings, [])
    for n in range(80):
        key = digest_key(s3_prefix, STREAM, written_at(n), PER_DIGEST * n, PER_DIGEST * n + 9)
        made.put(key)
        made.keys.append(key)
    # Not the chain's: another stream whose name starts alike, and strays in its folders.
    made.put(digest_key(s3_prefix, "orders-audit-10", written_at(3), 0, 999))
    made.put(f"{s3_prefix}digest/{STREAM}/year=2025/month=xx/day=01/stray.json")
    made.put(f"{s3_prefix}digest/{STREAM}/year=2025/month=03/day=04/{STREAM}-1-2.json")
    made.put(f"{s3_prefix}digest/{STREAM}/README.txt")
    return made


def test_each_offset_is_found_in_its_digest_with_a_few_listings(chain: Chain) -> None:
    for n in (0, 1, 5, 17, 40, 41, 62, 79):
        for offset in (PER_DIGEST * n, PER_DIGEST * n + 4, PER_DIGEST * n + 9):
            finder = chain.finder()
            placement = finder.place(offset)
            assert (placement.where, placement.digest and placement.digest.key) == (
                "covered", chain.keys[n]), offset
            # Three years, 19 months, 80 day folders, 80 digests (a listing of the whole
            # chain gives over 180 entries): a binary search lists few of them.
            assert finder.listings <= 30, (offset, finder.listings)
            assert finder.entries_listed <= 80, (offset, finder.entries_listed)


def test_an_offset_after_the_newest_digest_is_after_it(chain: Chain) -> None:
    finder = chain.finder()
    placement = finder.place(PER_DIGEST * 80 + 3)
    assert placement.where == "after"
    assert placement.digest is not None and placement.digest.key == chain.keys[-1]
    assert finder.listings <= 30 and finder.entries_listed <= 80


def test_a_removed_digest_is_a_gap_between_its_neighbours(chain: Chain) -> None:
    chain.delete(chain.keys[33])
    placement = chain.finder().place(PER_DIGEST * 33 + 5)
    assert placement.where == "gap"
    assert placement.digest is not None and placement.following is not None
    assert (placement.digest.key, placement.following.key) == (chain.keys[32], chain.keys[34])


def test_an_offset_before_the_first_digest_is_before_it(chain: Chain) -> None:
    chain.delete(chain.keys[0])
    placement = chain.finder().place(3)
    assert placement.where == "before"
    assert placement.digest is not None and placement.digest.key == chain.keys[1]


def test_a_stream_without_digests_has_none(chain: Chain) -> None:
    assert chain.finder("orders-audit-2").place(5).where == "none"
    # A name that only starts like a stream with digests.
    assert chain.finder("orders-audit").place(5).where == "none"


def test_a_digest_written_by_a_clock_behind_its_predecessors_is_found(chain: Chain) -> None:
    """A consumer taking over with its clock behind: its first digest lands in a folder
    before its predecessor's, out of the order the search relies on."""
    late = 50
    chain.delete(chain.keys[late])
    early = written_at(late - 1) - dt.timedelta(days=40)
    key = digest_key(chain.settings.s3_prefix, STREAM, early, PER_DIGEST * late,
                     PER_DIGEST * late + 9)
    chain.put(key)
    placement = chain.finder().place(PER_DIGEST * late + 2)
    assert (placement.where, placement.digest and placement.digest.key) == ("covered", key)
    # ... and the digests around it still are.
    for n in (late - 1, late + 1):
        assert chain.finder().place(PER_DIGEST * n).digest.key == chain.keys[n]  # type: ignore[union-attr]


def test_a_lookup_stops_at_its_deadline_and_its_bounds(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(LookupTooLongError, match="deadline"):
        chain.finder(deadline=time.monotonic() - 1).place(5)
    monkeypatch.setattr(digest_lookup, "MAX_LISTINGS", 3)
    with pytest.raises(LookupTooLongError, match="3 listings"):
        chain.finder().place(5)
    monkeypatch.setattr(digest_lookup, "MAX_LISTINGS", 256)
    monkeypatch.setattr(digest_lookup, "MAX_KEYS_LISTED", 20)
    chain.delete(chain.keys[33])  # a gap: decided from the whole chain, which is too long
    with pytest.raises(LookupTooLongError, match="more than 20 keys"):
        chain.finder().place(PER_DIGEST * 33)
