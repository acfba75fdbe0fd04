"""The words the index's ``standard`` analyzer makes of a text, for the archive's free text.

The analyzer is Lucene's standard tokenizer, then a lowercase filter. The tokenizer is a
JFlex grammar for Unicode's word boundaries (UAX #29) with additions of its own: it scans
a text from the start, takes the longest word it can at each point, and skips a character
where no word starts. The filter lowercases each character on its own (Java's
``Character.toLowerCase``): a capital sigma becomes the plain small sigma even at a word's
end, and U+0130 (capital I with a dot) becomes ``i``. This module cuts a text the same way;
it was checked against OpenSearch's ``_analyze``, character by character (every assigned
code point, in a few contexts) and on random mixes of the hard cases. Where the grammar
departs from UAX #29 it follows the grammar:

* a run of Thai, Lao, Myanmar, Khmer or Tai letters is one word;
* each Han ideograph (or radical) and each Hiragana character is a word, a run of Katakana
  is one;
* after a Hebrew letter an apostrophe goes on to a letter, digit or ``_`` (one word);
* an emoji (with its skin tone, U+FE0F, and the emoji that U+200D joins to it), a keycap
  (``#``, U+FE0F, U+20E3) and a pair of regional indicators (a flag) are words; after
  U+FE0F an emoji takes in nothing but a joiner to another emoji; a joiner or skin tone
  after a character that is in no word starts afresh (``!``, U+200D, an emoji: the word is
  U+200D and the emoji);
* other segments without a letter, digit, ideograph or emoji (``___``, a lone combining
  mark) are no words.

What remains different (the archive may then find a record the index does not, or miss
one):

* character properties: the classes here come from Python's Unicode tables (general
  category, the characters UAX #29 names, and the exceptions ``_analyze`` showed); the
  index's come from Lucene's tables (Unicode 12.1 at most) and its JVM's. A character
  assigned since then (such as U+0870 to U+089F, Arabic), whose lowercase the index's JVM
  may not know either, or a code point left unassigned may be cut or folded differently;
* a Thai, Lao, Myanmar, Khmer or Tai combining mark after no letter of its script is a
  word of its own to the index, and none here;
* a skin tone (U+1F3FB to U+1F3FF) right after punctuation that can join words (``.``,
  ``:``, ``,``, ``;``, apostrophes, ``_``): the index keeps it in one word with letters
  or digits on both sides (``a.``, skin tone, ``b``); here it stands alone;
* a stored word longer than 255 characters: the index cuts it into pieces of 255.
"""

from __future__ import annotations

import enum
import functools
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from typing import Final


class WB(enum.IntEnum):
    """Word_Break classes (UAX #29), with the standard tokenizer's own: IDEO, HIRAGANA, SA,
    EMOJI."""

    OTHER = 0
    NEWLINE = 1  # CR, LF and the other line ends: a boundary after them, always
    EXTEND = 2
    FORMAT = 3
    ZWJ = 4
    REGIONAL = 5
    KATAKANA = 6
    HEBREW = 7
    LETTER = 8
    SINGLE_QUOTE = 9
    DOUBLE_QUOTE = 10
    MID_NUM_LET = 11
    MID_LETTER = 12
    MID_NUM = 13
    NUMERIC = 14
    EXTEND_NUM_LET = 15
    IDEO = 16
    HIRAGANA = 17
    SA = 18
    EMOJI = 19
    MODIFIER = 20  # a skin tone: part of the emoji (or word) before, else an emoji
    KEYCAP_BASE = 21  # # and *: OTHER, but a word when a keycap mark follows


# WB4: part of the character before.
IGNORED: Final = frozenset({WB.EXTEND, WB.FORMAT, WB.ZWJ, WB.MODIFIER})
_MARKS: Final = frozenset({WB.EXTEND, WB.FORMAT})  # the ignorables without emoji roles
LETTERS: Final = frozenset({WB.LETTER, WB.HEBREW})  # UAX #29's AHLetter
WORDY: Final = frozenset({WB.LETTER, WB.HEBREW, WB.NUMERIC, WB.KATAKANA, WB.IDEO,
                          WB.HIRAGANA, WB.SA, WB.EMOJI})

_NAMED: Final[dict[int, WB]] = {
    **dict.fromkeys((0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029), WB.NEWLINE),
    0x200D: WB.ZWJ, 0x200C: WB.EXTEND, 0x200B: WB.OTHER, 0x202F: WB.EXTEND_NUM_LET,
    0x23: WB.KEYCAP_BASE, 0x2A: WB.KEYCAP_BASE, 0x27: WB.SINGLE_QUOTE,
    0x22: WB.DOUBLE_QUOTE, 0x066B: WB.NUMERIC,
    **dict.fromkeys((0x3A, 0xB7, 0x0387, 0x05F4, 0x2027, 0xFE13, 0xFE55, 0xFF1A), WB.MID_LETTER),
    **dict.fromkeys((0x2C, 0x3B, 0x037E, 0x0589, 0x060C, 0x060D, 0x066C, 0x07F8, 0x2044,
                     0xFE10, 0xFE14, 0xFE50, 0xFE54, 0xFF0C, 0xFF1B), WB.MID_NUM),
    **dict.fromkeys((0x2E, 0x2018, 0x2019, 0x2024, 0xFE52, 0xFF07, 0xFF0E), WB.MID_NUM_LET),
    **dict.fromkeys((0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x309B, 0x309C, 0x30A0, 0x30FC,
                     0xFF70), WB.KATAKANA),
}
# (first, last, class) for letters (and letter numbers) outside the ordinary Letter class.
_LETTER_RANGES: Final = (
    (0x05D0, 0x05F2, WB.HEBREW), (0xFB1D, 0xFB4F, WB.HEBREW),
    (0x0E00, 0x0EFF, WB.SA), (0x1000, 0x109F, WB.SA), (0x1780, 0x17FF, WB.SA),
    (0x1950, 0x1AAF, WB.SA), (0xA9E0, 0xA9FF, WB.SA), (0xAA60, 0xAADF, WB.SA),
    (0x11700, 0x1174F, WB.SA),
    (0x3006, 0x3007, WB.IDEO), (0x3021, 0x3029, WB.IDEO), (0x3038, 0x303A, WB.IDEO),
    (0x3400, 0x4DBF, WB.IDEO), (0x4E00, 0x9FFF, WB.IDEO), (0xF900, 0xFAFF, WB.IDEO),
    (0x20000, 0x3FFFF, WB.IDEO),
    (0x3041, 0x309F, WB.HIRAGANA), (0x1B001, 0x1B11F, WB.HIRAGANA), (0x1F200, 0x1F200, WB.HIRAGANA),
    (0x30A1, 0x30FF, WB.KATAKANA), (0x31F0, 0x31FF, WB.KATAKANA), (0x32D0, 0x32FE, WB.KATAKANA),
    (0x3300, 0x3357, WB.KATAKANA), (0xFF66, 0xFF9F, WB.KATAKANA), (0x1B000, 0x1B000, WB.KATAKANA),
)
# Unicode's Extended_Pictographic: what the tokenizer makes emoji words of.
_PICTOGRAPHIC: Final = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x2388, 0x2388), (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2),
    (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712), (0x2714, 0x2714),
    (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721), (0x2728, 0x2728), (0x2733, 0x2734),
    (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755),
    (0x2757, 0x2757), (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50),
    (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D), (0x1F546, 0x1F64F),
    (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)
_MODIFIERS: Final = range(0x1F3FB, 0x1F400)
_KEYCAP: Final = "\u20e3"
_KEYCAP_BASES: Final = frozenset("#*0123456789")
_PRESENTATION: Final = "\ufe0f"  # after an emoji, ends what it takes in
_TEXT_STYLE: Final = "\ufe0e"  # never part of an emoji word
_REGIONAL: Final = range(0x1F1E6, 0x1F200)
# Code points worth classifying one by one; the rest is unassigned or private (OTHER).
SCANNED: Final = (range(0, 0x40000), range(0xE0000, 0xE1000))


def _in(ranges: Sequence[tuple[int, int]], code: int) -> bool:
    index = bisect_right(ranges, (code, 0x10FFFF)) - 1
    return index >= 0 and ranges[index][0] <= code <= ranges[index][1]


_BY_CATEGORY: Final = {"Mn": WB.EXTEND, "Me": WB.EXTEND, "Mc": WB.EXTEND, "Cf": WB.FORMAT,
                       "Pc": WB.EXTEND_NUM_LET, "Nd": WB.NUMERIC}


# (first, last, class) whatever the general category says (checked with _analyze).
_OVERRIDES: Final = (
    # Letters by Word_Break though symbols or punctuation by category.
    (0x02C2, 0x02C5, WB.LETTER), (0x02D2, 0x02D7, WB.LETTER), (0x02DE, 0x02DF, WB.LETTER),
    (0x02ED, 0x02ED, WB.LETTER), (0x02EF, 0x02FF, WB.LETTER), (0x055B, 0x055C, WB.LETTER),
    (0x055E, 0x055E, WB.LETTER), (0x05F3, 0x05F3, WB.LETTER), (0x24B6, 0x24E9, WB.LETTER),
    (0xA720, 0xA721, WB.LETTER), (0xA789, 0xA78A, WB.LETTER), (0xAB5B, 0xAB5B, WB.LETTER),
    (0x1F130, 0x1F149, WB.LETTER), (0x1F150, 0x1F169, WB.LETTER), (0x1F170, 0x1F189, WB.LETTER),
    (0xFF9E, 0xFF9F, WB.EXTEND),  # halfwidth sound marks
    # Signs of the scripts whose runs are one word (Line_Break Complex_Context).
    (0x109E, 0x109F, WB.SA), (0x19DA, 0x19DA, WB.SA), (0x19DE, 0x19DF, WB.SA),
    (0x1AA0, 0x1AAD, WB.SA), (0xAA77, 0xAA79, WB.SA),
    (0x2E80, 0x2FDF, WB.IDEO),  # CJK and Kangxi radicals
    (0x32D0, 0x32FE, WB.KATAKANA), (0x3300, 0x3357, WB.KATAKANA),  # circled, squared
    # Ideographs of other scripts: no word at all to the tokenizer.
    (0x17000, 0x18D8F, WB.OTHER), (0x1B170, 0x1B2FF, WB.OTHER),
)


def _classify(code: int) -> WB:
    category = unicodedata.category(chr(code))
    if code in _NAMED:
        kind = _NAMED[code]
    elif code in _REGIONAL:
        kind = WB.REGIONAL
    elif code in _MODIFIERS:
        kind = WB.MODIFIER
    elif category in _BY_CATEGORY:
        kind = _BY_CATEGORY[category]
    elif _in(_PICTOGRAPHIC, code):
        kind = WB.EMOJI
    elif category[0] == "L" or category == "Nl":
        kind = next((k for first, last, k in _LETTER_RANGES if first <= code <= last), WB.LETTER)
    else:
        kind = WB.OTHER
    return kind


@functools.cache
def code_classes() -> dict[int, WB]:
    """Every scanned code point whose class is not OTHER (built once, on first use)."""
    table: dict[int, WB] = {code: kind for scanned in SCANNED for code in scanned
             if (kind := _classify(code)) is not WB.OTHER}
    for first, last, kind in _OVERRIDES:
        for code in range(first, last + 1):
            if unicodedata.category(chr(code)) == "Cn":
                continue
            if kind is WB.OTHER:
                table.pop(code, None)
            else:
                table[code] = kind
    return table


def kind_of(char: str) -> WB:
    return code_classes().get(ord(char), WB.OTHER)


def lower(char: str) -> str:
    """One character's lowercase as Java's ``Character.toLowerCase`` makes it (Unicode's
    simple mapping: one character for one, no context)."""
    low = char.lower()
    return low if len(low) == 1 else "i" if char == "\u0130" else char


@functools.cache
def folded_from() -> dict[str, tuple[str, ...]]:
    """For each lowercase character, the other characters whose lowercase it is."""
    found: dict[str, list[str]] = {}
    for scanned in SCANNED:
        for code in scanned:
            char = chr(code)
            low = lower(char)
            if low != char:
                found.setdefault(low, []).append(char)
    return {low: tuple(chars) for low, chars in found.items()}


# Cutting a text ---------------------------------------------------------------------------


class Unit:
    """A character with the ignorable characters it takes in (WB4)."""

    __slots__ = ("closed", "end", "keycap", "kind", "lone_tone", "start", "zwj_last")

    def __init__(self, start: int, kind: WB) -> None:
        self.start = start
        self.end = start + 1
        self.kind = kind
        self.zwj_last = kind is WB.ZWJ
        self.closed = False  # an emoji and U+FE0F: takes in nothing more but a joiner
        self.keycap = False  # #, * or a digit, then U+20E3
        self.lone_tone = False  # a skin tone that starts a unit (an emoji of its own)

    @property
    def base(self) -> WB:
        """The class for the pair rules: a lone ignorable or ``#`` acts as OTHER."""
        if self.kind in IGNORED or self.kind is WB.KEYCAP_BASE:
            return WB.OTHER
        return self.kind

    def takes(self, text: str, index: int) -> bool:
        """Whether the ignorable ``text[index]`` belongs to this unit (WB4, with the
        tokenizer's emoji grammar)."""
        char = text[index]
        if self.kind is WB.NEWLINE:
            return False
        if self.kind is WB.ZWJ:
            return char == "\u200d"  # a lone joiner leads only to an emoji
        if self.kind in IGNORED:
            return kind_of(char) in _MARKS  # skipped: what follows stands alone
        if self.closed:
            return char == "\u200d" and _emoji_follows(text, index + 1)
        if self.kind is WB.EMOJI or (self.keycap and self.kind is WB.KEYCAP_BASE):
            # An emoji takes in no text-style selector, and U+FE0F only after an emoji
            # character (it then closes it); a keycap takes in neither.
            return char != _TEXT_STYLE and (
                char != _PRESENTATION
                or (not self.keycap and kind_of(text[self.start]) is WB.EMOJI))
        return True

    def take(self, text: str, index: int) -> None:
        char = text[index]
        self.end = index + 1
        self.zwj_last = char == "\u200d"
        if char == _PRESENTATION and self.kind is WB.EMOJI:
            self.closed = True
        elif char == _KEYCAP and text[self.start] in _KEYCAP_BASES and not self.keycap:
            # A keycap: the base, ignorables but selectors, perhaps U+FE0F, then U+20E3.
            before = text[self.start + 1:index]
            self.keycap = not (_KEYCAP in before or _TEXT_STYLE in before
                               or _PRESENTATION in before[:-1])


def _emoji_follows(text: str, index: int) -> bool:
    while index < len(text) and text[index] == "\u200d":
        index += 1
    return index < len(text) and kind_of(text[index]) is WB.EMOJI


def units(text: str, loose: frozenset[int] = frozenset()) -> list[Unit]:
    """``text`` as units; a joiner or skin tone at an index in ``loose`` starts one."""
    units: list[Unit] = []
    for index, char in enumerate(text):
        kind = kind_of(char)
        last = units[-1] if units else None
        if (kind in IGNORED and last is not None and index not in loose
                and last.takes(text, index)):
            last.take(text, index)
            continue
        unit = Unit(index, WB.EMOJI if kind is WB.MODIFIER else kind)
        unit.lone_tone = kind is WB.MODIFIER
        units.append(unit)
    return units


_ALWAYS_JOINED: Final = frozenset(
    {(a, b) for a in LETTERS | {WB.NUMERIC} for b in LETTERS | {WB.NUMERIC}}  # WB5, 8, 9, 10
    | {(WB.KATAKANA, WB.KATAKANA), (WB.SA, WB.SA), (WB.HEBREW, WB.SINGLE_QUOTE)}  # 13, 7a
    | {(a, WB.EXTEND_NUM_LET) for a in LETTERS | {WB.NUMERIC, WB.KATAKANA,
                                                   WB.EXTEND_NUM_LET}}  # WB13a
    | {(WB.EXTEND_NUM_LET, b) for b in LETTERS | {WB.NUMERIC, WB.KATAKANA}}  # WB13b
)
LETTER_MIDS: Final = frozenset({WB.MID_LETTER, WB.MID_NUM_LET, WB.SINGLE_QUOTE})
NUMBER_MIDS: Final = frozenset({WB.MID_NUM, WB.MID_NUM_LET, WB.SINGLE_QUOTE})
# What continues a word after a Hebrew letter and an apostrophe (the tokenizer's grammar
# goes on where UAX #29 stops: ``ב'1`` is one word).
AFTER_HEBREW_QUOTE: Final = LETTERS | {WB.NUMERIC, WB.EXTEND_NUM_LET}
# An emoji after a zero-width joiner that ends a unit of these classes continues its word.
EMOJI_JOINS_AFTER: Final = frozenset({WB.EMOJI, WB.ZWJ})


def joined_pairs() -> frozenset[tuple[WB, WB]]:
    """(left, right) classes never parted (whatever is around them)."""
    return _ALWAYS_JOINED


def _bridged(before: WB | None, mid: WB, after: WB | None) -> bool:
    """Whether ``mid`` joins the characters on either side (WB6/7, WB7b/c, WB11/12)."""
    if before in LETTERS and after in LETTERS and mid in LETTER_MIDS:
        return True
    if before is WB.HEBREW and after is WB.HEBREW and mid is WB.DOUBLE_QUOTE:
        return True
    if before is WB.HEBREW and mid is WB.SINGLE_QUOTE and after in AFTER_HEBREW_QUOTE:
        return True
    return before is WB.NUMERIC and after is WB.NUMERIC and mid in NUMBER_MIDS


def _joined(units: list[Unit], index: int, regional_run: int) -> bool:
    """Whether no boundary falls between ``units[index - 1]`` and ``units[index]``;
    ``regional_run``: how many regional indicators end at ``units[index - 1]``."""
    left_unit, right_unit = units[index - 1], units[index]
    left, right = left_unit.base, right_unit.base
    if right is WB.EMOJI and left_unit.zwj_last and left_unit.kind in EMOJI_JOINS_AFTER:
        # WB3c, for emoji sequences only; a lone joiner leads to no lone skin tone.
        return left_unit.kind is WB.EMOJI or not right_unit.lone_tone
    if (left, right) in _ALWAYS_JOINED:
        return True
    if left is WB.REGIONAL and right is WB.REGIONAL:
        return regional_run % 2 == 1  # WB15/16: flags are pairs
    after = units[index + 1].base if index + 1 < len(units) else None
    before = units[index - 2].base if index >= 2 else None
    return _bridged(left, right, after) or _bridged(before, left, right)


def _is_word(units: Sequence[Unit]) -> bool:
    kinds = [unit.base for unit in units]
    if any(kind in WORDY for kind in kinds) or kinds.count(WB.REGIONAL) >= 2:
        return True
    return any(unit.keycap for unit in units)


def _segments(units: list[Unit]) -> list[list[Unit]]:
    found: list[list[Unit]] = []
    regional_run = 0
    for index, unit in enumerate(units):
        if index and _joined(units, index, regional_run):
            found[-1].append(unit)
        else:
            found.append([unit])
        regional_run = regional_run + 1 if unit.kind is WB.REGIONAL else 0
    return found


def _stray(text: str, segment: list[Unit]) -> int | None:
    """In a segment that is no word (skipped by the tokenizer), the first joiner or skin
    tone a unit took in: the tokenizer starts afresh there."""
    for unit in segment:
        if unit.kind in IGNORED:
            continue
        for index in range(unit.start + 1, unit.end):
            if kind_of(text[index]) in (WB.ZWJ, WB.MODIFIER):
                return index
    return None


def spans(text: str) -> list[tuple[int, int]]:
    """Where the words of ``text`` are: (start, end) indices, in order."""
    loose: frozenset[int] = frozenset()
    while True:
        segments = _segments(units(text, loose))
        strays = {i for s in segments if not _is_word(s) and (i := _stray(text, s)) is not None}
        if not strays:
            break
        loose |= strays
    return [(s[0].start, s[-1].end) for s in segments if _is_word(s)]


def tokens(text: str, *, folded: bool = True) -> list[str]:
    """The words of ``text``, lowercase as the index holds them (as given if not
    ``folded``)."""
    words = [text[start:end] for start, end in spans(text)]
    return ["".join(map(lower, word)) for word in words] if folded else words
