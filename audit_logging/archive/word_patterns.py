"""RE2 patterns that find one of the index's words in a stored text, for the archive's free
text (the words come from :mod:`audit_logging.archive.word_break`).

RE2 has no look-around, so a pattern consumes the characters around the word that decide
whether the index's tokenizer starts and ends a word there: UAX #29 looks at most one unit
(a character with the marks it takes in) beyond the one next to the word, and the
tokenizer's emoji grammar at the joiners and skin tones in between. Case is matched with
explicit classes (every character whose lowercase is the word's), never with RE2's case
folding, which equates characters the index keeps apart (the final and the plain small
sigma, the long s and ``s``, the micro sign and mu) and keeps apart ones it equates
(U+0130, capital I with a dot, and ``i``).

A pattern is compiled for every batch Arrow evaluates it on, and its large classes (all
letters, all marks) make most of that cost: they are kept few, and their spans run over
unassigned code points (whose class nobody relies on) to be fewer.
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from collections.abc import Iterable
from typing import Final

from audit_logging.archive.word_break import (
    AFTER_HEBREW_QUOTE,
    EMOJI_JOINS_AFTER,
    IGNORED,
    LETTER_MIDS,
    LETTERS,
    NUMBER_MIDS,
    SCANNED,
    WB,
    code_classes,
    folded_from,
    joined_pairs,
    kind_of,
    units,
)

_MARKS: Final = frozenset({WB.EXTEND, WB.FORMAT})
# Units that make a word of their own, whatever is around them.
_WORD_BASES: Final = frozenset({WB.LETTER, WB.HEBREW, WB.NUMERIC, WB.KATAKANA, WB.IDEO,
                                WB.HIRAGANA, WB.SA})
_ZWJ: Final = "\\x{200d}"
_SELECTORS: Final = "\ufe0e\ufe0f"


def _span(first: int, last: int) -> str:
    return f"\\x{{{first:x}}}" if first == last else f"\\x{{{first:x}}}-\\x{{{last:x}}}"


def _ranges(codes: Iterable[int], *, over_unassigned: bool = False) -> str:
    """An RE2 class body for ``codes``; ``over_unassigned``: spans also cover the code
    points between them that Unicode leaves unassigned (fewer spans, cheaper to compile)."""
    spans: list[str] = []
    first = last = -2
    for code in sorted(codes):
        if code == last + 1 or (over_unassigned and last >= 0 and _unassigned_between(last, code)):
            last = code
            continue
        if first >= 0:
            spans.append(_span(first, last))
        first = last = code
    if first >= 0:
        spans.append(_span(first, last))
    return "".join(spans)


@functools.cache
def _assigned() -> list[int]:
    """The code points Unicode assigns (as far as Python's tables know), in order."""
    return [code for scanned in SCANNED for code in scanned
            if unicodedata.category(chr(code)) != "Cn"]


def _unassigned_between(low: int, high: int) -> bool:
    assigned = _assigned()
    return bisect.bisect_right(assigned, low) == bisect.bisect_left(assigned, high)


@functools.cache
def _class(kinds: frozenset[WB], without: str = "") -> str:
    """An RE2 class of the characters of ``kinds`` (OTHER: every unlisted character) but
    those in ``without``."""
    table = code_classes()
    gone = {ord(char) for char in without}
    if WB.OTHER in kinds:
        excluded = [*(c for c, k in table.items() if k not in kinds), *gone]
        return f"[^{_ranges(excluded, over_unassigned=True)}]"
    included = (c for c, k in table.items() if k in kinds and c not in gone)
    return f"[{_ranges(included, over_unassigned=True)}]"


def _of(*kinds: Iterable[WB], without: str = "") -> str:
    return _class(frozenset[WB]().union(*kinds), without)


def _but(*kinds: Iterable[WB]) -> str:
    return _class(frozenset(WB).difference(*kinds))


def _x() -> str:
    return _of(IGNORED)


def _regional_pairs() -> str:
    """An even run of regional indicators from its start (units, with what they take)."""
    x, regional = _x(), _of({WB.REGIONAL})
    return f"(?:^{x}*|{_but(IGNORED, {WB.REGIONAL})}{x}*)(?:{regional}{x}*{regional}{x}*)*"


def _skipped(*, before_zwj: bool) -> str:
    """RE2 for text whose last unit is no part of a word, so that a joiner (or, without
    ``before_zwj``, a skin tone) after it starts a unit of its own (the tokenizer starts
    afresh there). A punctuation mark that joins letters or digits (``.``, ``'``, ``_``) is
    taken as no part of a word: see the module docstring of word_break for where that is
    wrong."""
    x, marks = _x(), _of(_MARKS)
    keycap_base = _of({WB.KEYCAP_BASE})
    not_keycap_mark = _of(_MARKS, without="\u20e3")
    joins_underscore = LETTERS | {WB.NUMERIC, WB.KATAKANA, WB.EXTEND_NUM_LET}
    underscore = _of({WB.EXTEND_NUM_LET})
    options = [
        f"(?:^|{_of({WB.NEWLINE})}){marks}*",
        f"{_of({WB.OTHER, WB.MID_LETTER, WB.MID_NUM, WB.MID_NUM_LET, WB.DOUBLE_QUOTE})}{marks}*",
        # An apostrophe, but not after a Hebrew letter (one word with it).
        f"(?:^{x}*|{_but(IGNORED, {WB.HEBREW})}{x}*)'{marks}*",
        # Underscores that no word char before joins.
        f"(?:^{x}*|{_but(IGNORED, joins_underscore)}{x}*)(?:{underscore}{marks}*)+",
        # # or * that is no keycap: no U+20E3, or before the first one U+FE0E, or U+FE0F
        # that is not just before it (see word_break.Unit.take).
        f"{keycap_base}(?:{not_keycap_mark}*|{not_keycap_mark}*\\x{{fe0e}}{not_keycap_mark}*"
        f"\\x{{20e3}}{marks}*|{not_keycap_mark}*\\x{{fe0f}}{not_keycap_mark}+\\x{{20e3}}{marks}*)",
        # A lone regional indicator.
        f"{_regional_pairs()}{_of({WB.REGIONAL})}{marks}*",
        # An emoji ended by a selector it does not take; a joiner ends one with U+FE0F only
        # when an emoji follows.
        f"{_of({WB.EMOJI})}\\x{{fe0f}}{marks}{'+' if before_zwj else '*'}",
        f"{_of({WB.EMOJI, WB.MODIFIER})}{_of(IGNORED, without=_SELECTORS)}*"
        f"\\x{{fe0e}}{marks}*",
        f"{_of({WB.MODIFIER})}{_of(IGNORED, without=_SELECTORS)}*\\x{{fe0f}}{marks}*",
    ]
    if not before_zwj:
        # A lone joiner: it takes in only joiners, and a skin tone is not an emoji for it.
        options.append(f"{_skipped(before_zwj=True)}{_ZWJ}+")
        options.append(f"{_of({WB.EMOJI})}\\x{{fe0f}}{marks}*{_ZWJ}+")
    return f"(?:{'|'.join(options)})"


def _mids_before(first: WB) -> dict[WB, frozenset[WB]]:
    """The punctuation that joins a word's ``first`` unit to what is before it, with the
    classes that must be there for it to."""
    mids: dict[WB, frozenset[WB]] = {}
    if first in LETTERS:
        mids.update(dict.fromkeys(LETTER_MIDS, LETTERS))
    if first is WB.HEBREW:
        mids[WB.DOUBLE_QUOTE] = frozenset({WB.HEBREW})
    if first is WB.NUMERIC:
        mids.update(dict.fromkeys(NUMBER_MIDS, frozenset({WB.NUMERIC})))
    if first in AFTER_HEBREW_QUOTE:
        mids[WB.SINGLE_QUOTE] = mids.get(WB.SINGLE_QUOTE, frozenset()) | {WB.HEBREW}
    return mids


def _grouped(mids: dict[WB, frozenset[WB]]) -> list[tuple[frozenset[WB], frozenset[WB]]]:
    """(punctuation, the classes beyond it that it joins to) pairs."""
    groups: dict[frozenset[WB], set[WB]] = {}
    for mid, far in mids.items():
        groups.setdefault(far, set()).add(mid)
    return [(frozenset(found), far) for far, found in groups.items()]


def _word_end_with_zwj() -> str:
    """RE2 for text whose last unit ends a word and took in the joiner that ends it."""
    x = _x()
    taken = _of(IGNORED, without=_SELECTORS)
    underscore = _of({WB.EXTEND_NUM_LET})
    joins_underscore = LETTERS | {WB.NUMERIC, WB.KATAKANA}
    options = [
        f"{_of(_WORD_BASES)}{x}*",
        f"{_of(joins_underscore)}{x}*(?:{underscore}{x}*)+",
        f"{_of({WB.HEBREW})}{x}*'{x}*",
        f"{_of({WB.KEYCAP_BASE})}{taken}*\\x{{fe0f}}?\\x{{20e3}}{taken}*",
        f"{_regional_pairs()}{_of({WB.REGIONAL})}{x}*{_of({WB.REGIONAL})}{x}*",
    ]
    return f"(?:{'|'.join(options)}){_ZWJ}"


def _before(word: str) -> str:
    """RE2 for the text just before ``word`` (as cut) where the tokenizer starts a word."""
    x = _x()
    first = kind_of(word[0])
    if first in (WB.ZWJ, WB.MODIFIER):
        return _skipped(before_zwj=first is WB.ZWJ)
    if first is WB.EMOJI:
        # Parted from what is before, unless a joiner taken in by an emoji (or a lone
        # joiner) comes just before.
        return f"(?:^|[^\\x{{200d}}]|{_word_end_with_zwj()})"
    if first is WB.REGIONAL:
        return _regional_pairs()
    joined = {left for left, right in joined_pairs() if right is first}
    mids = _mids_before(first)
    # The start, or a unit that does not join the word (a line end among them), or
    # punctuation that would join it but for what is before; then what that unit took in.
    # (Each large class costs RE2 time to compile, for every batch: they are kept few.)
    options = ["^", _but(IGNORED, joined, mids)]
    for found, far in _grouped(mids):
        options.append(f"(?:^|{_but(IGNORED, far)}){x}*{_of(found)}")
    return f"(?:{'|'.join(options)}){x}*"


def _after(word: str) -> str:
    """RE2 for the text just after ``word`` (as cut) where the tokenizer ends it."""
    cut = units(word)
    last_unit = cut[-1]
    x = _x()
    if last_unit.closed:
        return f"(?:$|[^\\x{{200d}}]|{_ZWJ}+(?:$|{_but({WB.EMOJI, WB.ZWJ})}))"
    last = last_unit.base
    joined = {right for left, right in joined_pairs() if left is last}
    if last is WB.SINGLE_QUOTE and len(cut) > 1 and cut[-2].base is WB.HEBREW:
        joined |= AFTER_HEBREW_QUOTE
    mids: dict[WB, frozenset[WB]] = {}
    if last in LETTERS:
        mids.update(dict.fromkeys(LETTER_MIDS - joined, LETTERS))
    if last is WB.HEBREW:
        mids[WB.DOUBLE_QUOTE] = frozenset({WB.HEBREW})
    if last is WB.NUMERIC:
        mids.update(dict.fromkeys(NUMBER_MIDS, frozenset({WB.NUMERIC})))
    excluded: set[WB] = {*IGNORED, *joined, *mids}
    if last_unit.zwj_last and last_unit.kind in EMOJI_JOINS_AFTER:
        excluded.add(WB.EMOJI)
    options = ["$", _but(excluded)]
    keycap = last_unit.keycap and last_unit.kind is WB.KEYCAP_BASE
    if last_unit.kind is WB.EMOJI or keycap:
        # Selectors an emoji word does not take in.
        lone_tone = kind_of(word[last_unit.start]) is WB.MODIFIER
        options.append("[\\x{fe0e}\\x{fe0f}]" if lone_tone or keycap else "\\x{fe0e}")
    for found, far in _grouped(mids):
        options.append(f"{_of(found)}{x}*(?:$|{_but(IGNORED, far)})")
    return f"(?:{'|'.join(options)})"


def _literal(word: str) -> str:
    """RE2 for ``word`` (lowercase) in any case the lowercase filter folds to it."""
    parts = []
    for char in word:
        codes = {ord(char), *(ord(c) for c in folded_from().get(char, ()))}
        parts.append(_ranges(codes) if len(codes) == 1 else f"[{_ranges(codes)}]")
    return "".join(parts)


def whole_word(word: str) -> str:
    """RE2 that finds ``word`` (one of word_break's ``tokens``) as a whole word of a text."""
    return _before(word) + _literal(word) + _after(word)


def word_start(word: str) -> str:
    """RE2 that finds a word of a text that starts with ``word`` (one of ``tokens``)."""
    return _before(word) + _literal(word)
