"""The library's UUIDv7s: made now (monotonic within a process) and made as if at a given
moment (for records made after the fact: tests, benchmarks), one implementation for both."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from audit_logging._uuid7 import uuid7_at, uuid7_str
from audit_logging.archive.search import log_id_day


def test_an_id_made_at_a_moment_says_that_moment_and_is_a_valid_uuid7() -> None:
    moment = dt.datetime(2025, 3, 30, 23, 59, 59, 999_000, tzinfo=dt.UTC)
    made = uuid7_at(moment)
    value = uuid.UUID(made)
    assert str(value) == made  # canonical, lower case
    assert (value.version, value.variant) == (7, uuid.RFC_4122)
    assert value.int >> 80 == int(moment.timestamp() * 1000)
    assert log_id_day(made) == dt.date(2025, 3, 30)  # what the archive reads back from it
    assert uuid7_at(moment) != made  # 74 random bits


def test_a_seeded_source_makes_the_same_ids_on_every_run() -> None:
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = [uuid7_at(moment, random.Random(7).getrandbits) for _ in range(2)]
    assert first[0] == first[1]
    assert uuid7_at(moment, random.Random(8).getrandbits) != first[0]
    # Later moments sort later, as the capture side's ids do.
    later = uuid7_at(moment + dt.timedelta(milliseconds=1), random.Random(0).getrandbits)
    assert later > uuid7_at(moment, lambda n: (1 << n) - 1)


def test_ids_made_now_are_valid_and_in_creation_order() -> None:
    made = [uuid7_str() for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert {uuid.UUID(m).version for m in made} == {7}
