"""Reindex's bookkeeping, without services: what became of records sent together is handed
back to the parts (archive files) they came from."""

from __future__ import annotations

from audit_logging.archive.reindex import Notes, Tally, split_refusals, tally_of
from audit_logging.indexer import Refusal


def test_refusals_go_back_to_their_part_at_their_position_there() -> None:
    refusals = [Refusal(7, 409, "x", "resend"), Refusal(47, 400, "bad", "index_refused"),
                Refusal(59, 409, "y", "duplicate_log_id")]
    first, second, third = split_refusals([20, 20, 20], refusals)
    assert first == [Refusal(7, 409, "x", "resend")]
    assert second == []
    assert third == [Refusal(7, 400, "bad", "index_refused"),
                     Refusal(19, 409, "y", "duplicate_log_id")]
    assert split_refusals([], []) == []


def test_a_tally_counts_what_the_index_held_and_refused() -> None:
    records = [{"log_id": f"id-{n}"} for n in range(5)]
    notes = Notes()
    refusals = [Refusal(0, 409, "same", "resend"),
                Refusal(1, 409, "duplicate_log_id: another record", "duplicate_log_id"),
                Refusal(3, 400, "mapper_parsing_exception: ip", "index_refused")]
    assert tally_of(records, refusals, notes) == Tally(records=5, indexed=2, present=2,
                                                       differing=1, refused=1)
    assert notes.differing == ["duplicate_log_id: another record"]
    assert notes.refused == ["log_id id-3: mapper_parsing_exception: ip"]
