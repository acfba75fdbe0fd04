"""The search route's query parameters, declared once, and their strict parsing.

:data:`SEARCH_PARAMS` is the one table of them: the record filters every search of audit
records takes (:mod:`audit_logging.record_filter`, shared with the archive), then this
route's paging. The parser below takes the names it accepts and every limit from it, and the
OpenAPI document (:mod:`audit_logging.api.openapi`) and the README's table list it, so both
say exactly what is enforced.

Anything unexpected is a 400 naming the parameter: unknown names, repeated names, empty or
over-long values, bad times and bad numbers are all refused rather than guessed at, so a
typo never silently widens a search.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, Final

from audit_logging.api.cursor import CURSOR_PATTERN, MAX_CURSOR_LENGTH, Cursor, decode_cursor
from audit_logging.api.errors import BadParameterError
from audit_logging.errors import FilterError, shown
from audit_logging.record_filter import (
    FILTER_PARAMS,
    MAX_SEARCH_TERM,
    Param,
    RecordFilter,
    SessionLookup,
    TimeBound,
    parse_filter,
    rfc3339,
    stores_no_session_keys,
)

__all__ = [
    "CURSOR",
    "DEFAULT_PAGE_SIZE",
    "DETAIL_PARAMETERS",
    "FROM_OFFSET",
    "MAX_PAGE_SIZE",
    "MAX_SEARCH_TERM",
    "MAX_WINDOW",
    "OFFSET_WITH_CURSOR",
    "PAGE_SIZE",
    "PROOF",
    "PROOF_DOC",
    "SEARCH_PARAMETERS",
    "SEARCH_PARAMS",
    "Param",
    "SearchParams",
    "TimeBound",
    "markdown_table",
    "parse_detail",
    "parse_search",
    "rfc3339",
    "single_values",
]

DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
# OpenSearch's index.max_result_window: from + size may not pass it; the cursor goes deeper.
MAX_WINDOW: Final = 10_000
# The cursor carries its own offset, so a from_offset beside it could only contradict it.
OFFSET_WITH_CURSOR: Final = "cannot be combined with cursor: the two exclude each other"
_DIGITS_RE: Final = re.compile(r"[0-9]{1,9}")

PAGE_SIZE: Final = Param(
    "page_size", "count", "Results per page.", MAX_PAGE_SIZE, minimum=1, default=DEFAULT_PAGE_SIZE
)
FROM_OFFSET: Final = Param(
    "from_offset",
    "count",
    f"Results to skip; from_offset + page_size must be at most {MAX_WINDOW}. Use the cursor"
    " to go deeper. Excludes cursor: a request with both is a 400 (field from_offset).",
    MAX_WINDOW - 1,
)
CURSOR: Final = Param(
    "cursor",
    "text",
    "The 'next' value of the previous page, to read the page after it (at any depth)."
    " Excludes from_offset (the cursor carries the offset): a request with both is a"
    " 400 (field from_offset).",
    MAX_CURSOR_LENGTH,
    pattern=f"^{CURSOR_PATTERN}$",
)
# In the order the OpenAPI document lists them, and the parser checks them.
SEARCH_PARAMS: Final = (*FILTER_PARAMS, PAGE_SIZE, FROM_OFFSET, CURSOR)
SEARCH_PARAMETERS: Final = tuple(param.name for param in SEARCH_PARAMS)

# The detail route's one parameter: spelt exactly, so that a caller who asked for a proof never
# gets an answer without one because of how a client library writes booleans.
PROOF: Final = "proof"
PROOF_VALUES: Final = ("true", "false")
PROOF_DOC: Final = (
    "true: the answer has a 'proof' member: the archive object that holds the record, its"
    " SHA-256 as S3 holds it now, and the signed digest that lists it (see the Proof schema)."
    " Exactly true or false (default); anything else is a 400 (field proof)."
)
DETAIL_PARAMETERS: Final = (PROOF,)


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """A search of the route: which records (the filter), and which page of them."""

    record_filter: RecordFilter = dataclasses.field(default_factory=RecordFilter)
    page_size: int = DEFAULT_PAGE_SIZE
    from_offset: int = 0
    cursor: Cursor | None = None

    @property
    def exact(self) -> dict[str, str]:
        return self.record_filter.exact

    @property
    def ip_address(self) -> str | None:
        return self.record_filter.ip_address

    @property
    def start(self) -> TimeBound | None:
        return self.record_filter.start

    @property
    def end(self) -> TimeBound | None:
        return self.record_filter.end

    @property
    def search_term(self) -> str | None:
        return self.record_filter.search_term

    @property
    def offset(self) -> int:
        """The absolute offset of the first result of this page."""
        return self.cursor.offset if self.cursor is not None else self.from_offset

    def filters(self) -> dict[str, Any]:
        """The filters as given (normalised), for the read's own audit record; never the
        value of ``session``."""
        return self.record_filter.filters()


def single_values(items: Sequence[tuple[str, str]], allowed: Sequence[str]) -> dict[str, str]:
    """The query's ``name -> value``; 400 for an unknown name or one given twice."""
    values: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise BadParameterError(name, f"is not a parameter of this route (known: {known})")
        if name in values:
            raise BadParameterError(name, "is given more than once")
        values[name] = value
    return values


def parse_detail(items: Sequence[tuple[str, str]]) -> bool:
    """Whether the detail ``items`` (the query's pairs) ask for a proof; 400 naming the
    parameter for an unknown, repeated or bad one."""
    values = single_values(items, DETAIL_PARAMETERS)
    value = values.get(PROOF, "false")
    if value not in PROOF_VALUES:
        raise BadParameterError(PROOF, f"must be true or false, got '{shown(value)}'")
    return value == "true"


def parse_search(
    items: Sequence[tuple[str, str]], session_key: SessionLookup = stores_no_session_keys
) -> SearchParams:
    """The search ``items`` (the query's pairs) ask for; 400 naming the first bad parameter
    in the table's order. ``session_key`` makes the stored form of the ``session`` filter
    (:func:`audit_logging.record_filter.session_lookup`); without it, ``session`` is a 400."""
    values = single_values(items, SEARCH_PARAMETERS)
    try:
        record_filter = parse_filter(values, session_key)
    except FilterError as exc:
        raise BadParameterError(exc.name, exc.reason) from None
    page_size = PAGE_SIZE.default
    if PAGE_SIZE.name in values:
        page_size = _count(PAGE_SIZE, values[PAGE_SIZE.name])
    from_offset = FROM_OFFSET.default
    cursor = None
    if CURSOR.name in values:
        if FROM_OFFSET.name in values:
            raise BadParameterError(FROM_OFFSET.name, OFFSET_WITH_CURSOR)
        cursor = decode_cursor(values[CURSOR.name])
    elif FROM_OFFSET.name in values:
        from_offset = _count(FROM_OFFSET, values[FROM_OFFSET.name])
        if from_offset + page_size > MAX_WINDOW:
            raise BadParameterError(
                FROM_OFFSET.name,
                f"plus page_size must be at most {MAX_WINDOW}, got {from_offset} + {page_size};"
                " follow the 'next' cursor to go deeper",
            )
    return SearchParams(
        record_filter=record_filter, page_size=page_size, from_offset=from_offset, cursor=cursor
    )


def _count(param: Param, value: str) -> int:
    lo, hi = param.minimum, param.limit
    if not _DIGITS_RE.fullmatch(value):
        raise BadParameterError(
            param.name, f"must be a whole number from {lo} to {hi}, got '{shown(value)}'"
        )
    number = int(value)
    if not lo <= number <= hi:
        raise BadParameterError(param.name, f"must be from {lo} to {hi}, got {number}")
    return number


def markdown_table() -> str:
    """The README's table of the search route's parameters."""
    lines = ["| parameter | value | meaning |", "|---|---|---|"]
    for param in SEARCH_PARAMS:
        lines.append(f"| `{param.name}` | {_value_of(param)} | {param.doc} |")
    return "\n".join(lines) + "\n"


def _value_of(param: Param) -> str:
    if param.kind == "count":
        return f"{param.minimum} to {param.limit}, default {param.default}"
    what = {"ip": "address or network", "time": "date or time"}.get(param.kind, "text")
    return f"{what}, ≤ {param.limit} characters"
