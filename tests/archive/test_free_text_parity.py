"""Free text answers the same from both tiers, checked against the real services: generated
records go into a real index (made from the project's template) and into the archive in the
real S3, and generated terms aimed at the hard cases of the index's word cutting and case
folding must find the same records in both. Then the kinds of term that once parted the
tiers, each with the records it must find.

The corpus is made once per module from a fixed seed and Hypothesis draws the terms
deterministically (``derandomize``), so a failure is the same failure on every run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opensearchpy import helpers

from audit_logging.api.query import free_text as free_text_query
from audit_logging.archive.search import ArchiveSearch
from audit_logging.archive.store import ArchiveStore
from audit_logging.record_filter import RecordFilter, TimeBound
from audit_logging.search_index import index_for, index_pattern, install_template
from audit_logging.settings import Settings
from tests._stack import delete_indices, delete_objects, opensearch_client, unique
from tests.archive._archive import put_archive, record_at

pytestmark = pytest.mark.services

DAY0 = dt.datetime(2024, 5, 14, 8, 0, tzinfo=dt.UTC)

# Characters by what makes them hard for word cutting or case folding.
POOLS: Final = {
    "latin": "abcxyzABCXYZ",
    "accented": "éÉüÜßẞøæ",
    "greek": "σςΣαΑλόγΛΌΓ",  # final sigma
    "turkish": "iI\u0130\u0131",  # dotted capital I, dotless small i
    # long s, Kelvin, micro, Angstrom, a title-case digraph
    "folds": "\u017f\u212a\u00b5\u212b\u01c5",
    "cyrillic": "жЖяЯ",
    "digits": "0123456789",
    "arabic_digits": "١٢",
    "marks": "\u0301\u0308\u0327",  # combining (Extend)
    "format": "\u00ad\u2060\u200c\u200d\u200b\ufe0e\ufe0f",
    # MidLetter, MidNum, MidNumLet (with the curly apostrophes), quotes, ExtendNumLet
    "joiners": ".:,;'\u2019\u2018\u00b7_",
    "punctuation": "-/@#!?()\"*",
    "han": "漢字请求批准",
    "hiragana": "ひらが",
    "katakana": "カタナー",
    "hangul": "한국어",
    "thai": "ภาษาไทย",
    "hebrew": "אבג",
    "space": "  \t\n\u00a0",
}
EMOJI: Final = ("😀", "👍🏽", "🏽", "👨\u200d👩\u200d👧", "🇫🇷", "🇩🇪", "🇫", "❤\ufe0f",
                "#\ufe0f\u20e3", "\u20e3", "©")
ALPHABET: Final = (*"".join(POOLS.values()), *EMOJI)
SEPARATORS: Final = (" ", "  ", ".", ":", ",", "'", "\u2019", "-", "/", "@", "_", ". ", ", ",
                     "\u00a0")
ENDINGS: Final = ("", "", "", ".", ",", ":", "!", "?", "'", "…", "-")
CASES: Final[tuple[Callable[[str], str], ...]] = (
    str, str.upper, str.lower, str.title, str.swapcase, str.casefold)
# The one difference the archive's documentation admits (audit_logging/archive/word_break.py):
# a skin tone right after punctuation that joins words, which the index may or may not
# keep in one word with what follows. Generated texts never hold it; nothing else is left out.
DOCUMENTED_GAP: Final = re.compile(
    "[.:,;'\u2019\u2018\u00b7_\"][\u0301\u0308\u0327\u00ad\u2060\u200c\ufe0e\ufe0f]*[\U0001F3FB-\U0001F3FF]")
TEXT_FIELDS: Final = ("username", "object_repr", "change_message")


def fragment(rng: random.Random, length: int) -> str:
    out = []
    for _ in range(length):
        if rng.random() < 0.1:
            out.append(rng.choice(EMOJI))
        else:
            out.append(rng.choice(POOLS[rng.choice(list(POOLS))]))
    return "".join(out)


def generated_text(rng: random.Random) -> str:
    while True:
        words = [fragment(rng, rng.randint(1, 7)) for _ in range(rng.randint(1, 5))]
        text = "".join(w + rng.choice(SEPARATORS) for w in words).strip()
        if text and not DOCUMENTED_GAP.search(text):
            return text


def corpus(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        fields = {name: generated_text(rng) for name in TEXT_FIELDS}
        fields["object_type"] = generated_text(rng) if i % 3 == 0 else "Invoice"
        fields["object_id"] = generated_text(rng) if i % 4 == 0 else f"obj-{i}"
        records.append(record_at(DAY0 + dt.timedelta(minutes=i), **fields))
    return records


class Tiers:
    """The same records in a real index and in the archive in the real S3. (Not a
    dataclass: Hypothesis prints a failing test's arguments, and this one stays short.)"""

    def __init__(self, settings: Settings, client: Any, records: list[dict[str, Any]]) -> None:
        self.settings = settings
        self.client = client
        self.records = records
        self.archive = ArchiveSearch(ArchiveStore(settings))
        self.words: list[str] = []  # as the index cut the records' texts

    def __repr__(self) -> str:
        return f"Tiers({len(self.records)} records)"

    def found(self, term: str) -> tuple[set[str], set[str]]:
        """The log_ids ``term`` finds: (in the archive, in the index)."""
        size = len(self.records) + 1
        # The corpus's day as bounds spares listing every month up to today; the index
        # holds nothing outside them either.
        day = RecordFilter(search_term=term, start=TimeBound(DAY0 - dt.timedelta(days=1)),
                           end=TimeBound(DAY0 + dt.timedelta(days=1)))
        page = self.archive.page(day, offset=0, size=size, columns=("log_id",))
        hits = self.client.search(
            index=index_pattern(self.settings.opensearch_index_prefix),
            body={"query": free_text_query(term), "size": size, "_source": False})
        return {r["log_id"] for r in page.records}, {h["_id"] for h in hits["hits"]["hits"]}

    def index_words(self) -> list[str]:
        """Every word the index made of the records, as written there (by _analyze)."""
        found: list[str] = []
        for record in self.records:
            for name in TEXT_FIELDS:
                text = record[name]
                tokens = self.client.indices.analyze(body={"analyzer": "standard", "text": text})
                # Offsets count UTF-16 code units, as Java strings do.
                units = text.encode("utf-16-le")
                found.extend(units[2 * t["start_offset"]:2 * t["end_offset"]].decode("utf-16-le")
                             for t in tokens["tokens"])
        return sorted(set(found))


def make_tiers(stack_settings: Settings, records: list[dict[str, Any]]) -> Iterator[Tiers]:
    test_settings = dataclasses.replace(
        stack_settings, opensearch_index_prefix=unique("test-parity"),
        s3_prefix=unique("tests-parity") + "/")
    client = opensearch_client(test_settings)
    try:
        prefix = test_settings.opensearch_index_prefix
        install_template(client, prefix)
        actions = [{"_index": index_for(prefix, r["timestamp"]), "_id": r["log_id"], "_source": r}
                   for r in records]
        assert helpers.bulk(client, actions, refresh="wait_for")[0] == len(records)
        put_archive(test_settings, records, per_file=len(records))
        yield Tiers(test_settings, client, records)
    finally:
        client.close()
        delete_indices(test_settings, test_settings.opensearch_index_prefix)
        delete_objects(test_settings, test_settings.s3_prefix)


@pytest.fixture(scope="module")
def generated(stack_settings: Settings) -> Iterator[Tiers]:
    for tiers in make_tiers(stack_settings, corpus(seed=29, count=90)):
        tiers.words = tiers.index_words()
        yield tiers


@st.composite
def terms(draw: st.DrawFn, tiers: Tiers) -> str:
    records = tiers.records
    if draw(st.integers(0, 9)) == 0:
        # A whole keyword value (equal, or not when its case changed).
        record = draw(st.sampled_from(records))
        value = record[draw(st.sampled_from(("username", "object_type", "object_id")))]
        return str(draw(st.sampled_from(CASES))(value))
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        source = draw(st.sampled_from(("word", "word", "slice", "fresh")))
        if source == "word":
            piece = draw(st.sampled_from(tiers.words))
            piece = piece[:draw(st.integers(1, len(piece)))]
        elif source == "slice":
            text = draw(st.sampled_from(records))[draw(st.sampled_from(TEXT_FIELDS))]
            start = draw(st.integers(0, len(text) - 1))
            piece = text[start:start + draw(st.integers(1, 12))]
        else:
            piece = "".join(draw(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=6)))
        pieces.append(draw(st.sampled_from(CASES))(piece))
    term = pieces[0]
    for piece in pieces[1:]:
        term += draw(st.sampled_from(SEPARATORS)) + piece
    return term + draw(st.sampled_from(ENDINGS))


@settings(max_examples=200, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_terms_find_the_same_records_in_both_tiers(
    generated: Tiers, data: st.DataObject,
) -> None:
    term = data.draw(terms(generated).map(str.strip).filter(lambda t: 0 < len(t) <= 100),
                     label="term")
    in_archive, in_index = generated.found(term)
    assert in_archive == in_index, (
        f"{term!r}: only in the archive {_texts(generated, in_archive - in_index)}, "
        f"only in the index {_texts(generated, in_index - in_archive)}")


def test_generated_terms_reach_the_hard_cases(generated: Tiers) -> None:
    """The corpus holds what the comparison is about, and searches find records in it (a
    comparison of two empty answers would prove nothing)."""
    tiers, index_words = generated, generated.words
    texts = " ".join(r[name] for r in tiers.records for name in TEXT_FIELDS)
    for pool in ("marks", "format", "joiners", "greek", "turkish", "folds", "han", "thai"):
        assert any(char in texts for char in POOLS[pool]), pool
    assert any(emoji in texts for emoji in EMOJI)
    found = [tiers.found(word)[1] for word in index_words[::25]]
    assert all(found) and len(found) > 10


def _texts(tiers: Tiers, ids: set[str]) -> list[tuple[str, ...]]:
    return [tuple(r[name] for name in TEXT_FIELDS) for r in tiers.records if r["log_id"] in ids]


# The kinds of term the tiers once answered differently: (text, term, whether it matches).
KNOWN: Final = (
    ("ref a:1", "a 1", True),  # a colon between a letter and a digit parts them
    ("build v.2", "v 2", True),  # so does a full stop
    ("step 1.b", "b 1", True),
    ("paid 1,000 EUR", "1 000", False),  # 1,000 is one word
    ("paid 1,000 EUR", "1,000", True),
    ("pi is 3.14", "3 14", False),  # 3.14 is one word
    ("cafe\u0301 open", "cafe open", False),  # a combining mark is part of its word
    ("cafe\u0301 open", "CAFE\u0301", True),
    ("soft\u00adware ok", "soft ware", False),  # so is a format character
    ("ab\u2060cd", "ab cd", False),
    ("λόγος", "ΛΌΓΟΣ", False),  # capital sigma lowercases to the plain, never the final one
    ("λόγος", "λόγος", True),
    ("ΣΊΣΥΦΟΣ", "σίσυφοσ", True),
    ("İstanbul office", "istanbul", True),  # İ lowercases to i
    ("\u017ftop", "stop", False),  # long s is not s to the lowercase filter
    ("10 \u00b5s", "\u03bcs", False),  # nor is the micro sign the Greek mu
    ("5 \u212a", "k", True),  # the Kelvin sign is k
    ("status changed", "stat", True),  # the last word may be a word's start ...
    ("status changed", "stat.", False),  # ... only when the term ends with it
    ("status changed", "changed stat,", False),
    ("invoice.pdf sent", "invoice.", False),
    ("invoice.pdf sent", "invoice sent", False),  # invoice.pdf is one word
    ("nice 👍🏽", "👍 nice", False),  # the skin tone is part of the emoji word
    ("nice 👍🏽", "👍🏽 nice", True),
    ("key #\ufe0f\u20e3", "#\ufe0f\u20e3", True),  # a keycap is a word
    ("it's a'1", "a 1", True),  # an apostrophe joins letters or digits, not one to other
    ("שלום צה\"ל", "צה\"ל שלום", True),  # Hebrew ״ between Hebrew letters
    ("x ב'1 y", "ב'1 x", True),  # after a Hebrew letter ' goes on to a digit
)


@pytest.fixture(scope="module")
def known(stack_settings: Settings) -> Iterator[tuple[Tiers, dict[str, str]]]:
    texts = sorted({text for text, _, _ in KNOWN})
    records = [record_at(DAY0 + dt.timedelta(minutes=i), change_message=text,
                         object_id=f"known-{i}", username="auditor")
               for i, text in enumerate(texts)]
    for tiers in make_tiers(stack_settings, records):
        yield tiers, {r["change_message"]: r["log_id"] for r in records}


@pytest.mark.parametrize(("text", "term", "matches"), KNOWN)
def test_known_kinds_of_term_find_the_same_records_in_both_tiers(
    known: tuple[Tiers, dict[str, str]], text: str, term: str, matches: bool,
) -> None:
    tiers, log_id_of = known
    in_archive, in_index = tiers.found(term)
    assert in_archive == in_index
    assert (log_id_of[text] in in_index) is matches
