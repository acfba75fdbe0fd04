"""The search route's query parameters, declared once, and their strict parsing.

:data:`SEARCH_PARAMS` is the one table of them: the parser below takes the names it accepts
and every limit from it, and the OpenAPI document (:mod:`audit_logging.api.openapi`) lists
it, so the document says exactly what is enforced.

Anything unexpected is a 400 naming the parameter: unknown names, repeated names, empty or
over-long values, bad times and bad numbers are all refused rather than guessed at, so a
typo never silently widens a search.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar

from audit_logging.api.cursor import CURSOR_PATTERN, MAX_CURSOR_LENGTH, Cursor, decode_cursor
from audit_logging.api.errors import BadParameterError, shown
from audit_logging.record import STRING_LIMITS

# Free text is analysed into one query clause per word and field; this bound keeps the
# worst case (one word per CJK character) well under OpenSearch's 1,024-clause limit.
MAX_SEARCH_TERM: Final = 100
MAX_TIME_LENGTH: Final = 64
MAX_IP_LENGTH: Final = 64
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
# OpenSearch's index.max_result_window: from + size may not pass it; the cursor goes deeper.
MAX_WINDOW: Final = 10_000
# The cursor carries its own offset, so a from_offset beside it could only contradict it.
OFFSET_WITH_CURSOR: Final = "cannot be combined with cursor: the two exclude each other"
# What the document promises of a network; the parser asks the ipaddress module instead.
_CIDR_PATTERN: Final = "^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
_DIGITS_RE: Final = re.compile(r"[0-9]{1,9}")

# text: a non-empty string; ip: an address or CIDR network; time: ISO 8601 date or time;
# count: a whole number; cursor: a 'next' value the API issued.
Kind = Literal["text", "ip", "time", "count", "cursor"]


@dataclasses.dataclass(frozen=True)
class Param:
    """A query parameter of the search route: what the parser enforces, what the document says."""

    name: str
    kind: Kind
    doc: str
    # The most characters of a value, or for a count its largest value.
    limit: int
    minimum: int = 0  # counts only
    default: int = 0  # counts only

    def json_schema(self) -> dict[str, Any]:
        """The parameter's schema in the OpenAPI (3.0) document."""
        if self.kind == "count":
            return {
                "type": "integer",
                "minimum": self.minimum,
                "maximum": self.limit,
                "default": self.default,
            }
        if self.kind == "ip":
            formats = [{"format": "ipv4"}, {"format": "ipv6"}, {"pattern": _CIDR_PATTERN}]
            return {"type": "string", "maxLength": self.limit, "anyOf": formats}
        if self.kind == "time":
            formats = [{"format": "date-time"}, {"format": "date"}]
            return {"type": "string", "maxLength": self.limit, "anyOf": formats}
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": self.limit}
        if self.kind == "cursor":
            schema["pattern"] = f"^{CURSOR_PATTERN}$"
        return schema


def _exact(name: str, doc: str) -> Param:
    # The record's own limit: a longer value could never match.
    return Param(name, "text", doc, STRING_LIMITS[name])


_TIME_DOC: Final = (
    "ISO 8601 date or date-time. A time without a zone is UTC. Both bounds are inclusive;"
    " a date alone stands for the whole (UTC) day, so end_time=2026-01-31 includes the 31st."
)

EXACT_FILTERS: Final = (
    _exact("user_id", "Exact user id."),
    _exact("username", "Exact username (case-sensitive, whole value)."),
    _exact("action", "Exact action, e.g. CREATE, UPDATE, DELETE, LOGIN (case-sensitive)."),
    _exact("object_type", "Exact object type, e.g. Customer."),
    _exact("object_id", "Exact object id."),
)
IP_ADDRESS: Final = Param(
    "ip_address",
    "ip",
    "IPv4 or IPv6 address, or a CIDR network such as 10.0.0.0/8 (every address in it).",
    MAX_IP_LENGTH,
)
START_TIME: Final = Param("start_time", "time", "Earliest timestamp. " + _TIME_DOC, MAX_TIME_LENGTH)
END_TIME: Final = Param(
    "end_time", "time", "Latest timestamp; not before start_time. " + _TIME_DOC, MAX_TIME_LENGTH
)
SEARCH_TERM: Final = Param(
    "search_term",
    "text",
    "Free text, not only white space (leading and trailing spaces are ignored): records whose"
    " username, object_repr or change_message contain every word (the last may be the start of"
    " a word), or whose username, object_type or object_id equal it. Plain text: no query"
    " syntax is interpreted.",
    MAX_SEARCH_TERM,
)
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
    "cursor",
    "The 'next' value of the previous page, to read the page after it (at any depth)."
    " Excludes from_offset (the cursor carries the offset): a request with both is a"
    " 400 (field from_offset).",
    MAX_CURSOR_LENGTH,
)
# In the order the OpenAPI document lists them.
SEARCH_PARAMS: Final = (
    *EXACT_FILTERS,
    IP_ADDRESS,
    START_TIME,
    END_TIME,
    SEARCH_TERM,
    PAGE_SIZE,
    FROM_OFFSET,
    CURSOR,
)
SEARCH_PARAMETERS: Final = tuple(param.name for param in SEARCH_PARAMS)
_BY_NAME: Final = {param.name: param for param in SEARCH_PARAMS}


@dataclasses.dataclass(frozen=True)
class TimeBound:
    moment: dt.datetime  # aware, UTC
    inclusive: bool = True


@dataclasses.dataclass(frozen=True)
class SearchParams:
    exact: dict[str, str] = dataclasses.field(default_factory=dict)
    ip_address: str | None = None  # an address or a CIDR network, normalised
    start: TimeBound | None = None
    end: TimeBound | None = None
    search_term: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    from_offset: int = 0
    cursor: Cursor | None = None

    @property
    def offset(self) -> int:
        """The absolute offset of the first result of this page."""
        return self.cursor.offset if self.cursor is not None else self.from_offset

    def filters(self) -> dict[str, Any]:
        """The filters as given (normalised), for the read's own audit record."""
        given: dict[str, Any] = dict(self.exact)
        if self.ip_address is not None:
            given["ip_address"] = self.ip_address
        if self.start is not None:
            given["start_time"] = rfc3339(self.start.moment)
        if self.end is not None:
            given["end_time"] = rfc3339(self.end.moment)
            if not self.end.inclusive:
                given["end_time_exclusive"] = True
        if self.search_term is not None:
            given["search_term"] = self.search_term
        return given


def rfc3339(moment: dt.datetime) -> str:
    """``moment`` (aware, UTC) as RFC 3339 with microseconds, years zero-padded."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


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


_T = TypeVar("_T")


def _read(given: Mapping[Param, str], param: Param, read: Callable[[Param, str], _T]) -> _T | None:
    return read(param, given[param]) if param in given else None


def parse_search(items: Sequence[tuple[str, str]]) -> SearchParams:
    values = single_values(items, SEARCH_PARAMETERS)
    given = {_BY_NAME[name]: value for name, value in values.items()}
    # Checked in the table's order, so of two bad parameters the first is the one named.
    exact = {param.name: _text(param, given[param]) for param in EXACT_FILTERS if param in given}
    ip = _read(given, IP_ADDRESS, _ip)
    start = _read(given, START_TIME, _start)
    end = _read(given, END_TIME, _end)
    if start is not None and end is not None and not _ordered(start, end):
        raise BadParameterError(START_TIME.name, f"is after {END_TIME.name}")
    term = _read(given, SEARCH_TERM, _search_term)
    page_size = _read(given, PAGE_SIZE, _count)
    if page_size is None:
        page_size = PAGE_SIZE.default
    from_offset = FROM_OFFSET.default
    cursor = None
    if CURSOR in given:
        if FROM_OFFSET in given:
            raise BadParameterError(FROM_OFFSET.name, OFFSET_WITH_CURSOR)
        cursor = decode_cursor(given[CURSOR])
    elif FROM_OFFSET in given:
        from_offset = _count(FROM_OFFSET, given[FROM_OFFSET])
        if from_offset + page_size > MAX_WINDOW:
            raise BadParameterError(
                FROM_OFFSET.name,
                f"plus page_size must be at most {MAX_WINDOW}, got {from_offset} + {page_size};"
                " follow the 'next' cursor to go deeper",
            )
    return SearchParams(
        exact=exact,
        ip_address=ip,
        start=start,
        end=end,
        search_term=term,
        page_size=page_size,
        from_offset=from_offset,
        cursor=cursor,
    )


def _text(param: Param, value: str) -> str:
    if value == "":
        raise BadParameterError(param.name, "must not be empty (leave it out to not filter on it)")
    if len(value) > param.limit:
        raise BadParameterError(
            param.name, f"must be at most {param.limit} characters, got {len(value)}"
        )
    return value


def _search_term(param: Param, value: str) -> str:
    # The limit applies to the value as given, as the OpenAPI document says.
    term = _text(param, value).strip()
    if not term:
        raise BadParameterError(param.name, "must hold more than white space")
    return term


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


def _ip(param: Param, value: str) -> str:
    # A scope id (fe80::1%eth0) names an interface of the machine that saw the address:
    # records never hold one, and OpenSearch's ip type would reject the query.
    if len(value) <= param.limit and "%" not in value:
        try:
            if "/" in value:
                # A network with host bits set (10.1.2.3/16) means the network it lies in.
                return str(ipaddress.ip_network(value, strict=False))
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise BadParameterError(
        param.name, f"must be an IPv4 or IPv6 address or CIDR network, got '{shown(value)}'"
    )


def _start(param: Param, value: str) -> TimeBound:
    return _time(param, value, end=False)


def _end(param: Param, value: str) -> TimeBound:
    return _time(param, value, end=True)


def _time(param: Param, value: str, *, end: bool) -> TimeBound:
    """An ISO 8601 time; naive means UTC. A date alone spans its whole (UTC) day, so
    ``end_time=2026-01-31`` includes all of the 31st."""
    if 0 < len(value) <= param.limit:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            if not end:
                return TimeBound(midnight)
            if day == dt.date.max:
                return TimeBound(dt.datetime.max.replace(tzinfo=dt.UTC))
            return TimeBound(midnight + dt.timedelta(days=1), inclusive=False)
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            try:
                return TimeBound(moment.astimezone(dt.UTC))
            except OverflowError:
                pass  # e.g. 0001-01-01T00:00+01:00, which is before year 1 in UTC
    raise BadParameterError(
        param.name,
        f"must be an ISO 8601 date or time such as 2026-01-31T23:59:59Z, got '{shown(value)}'",
    )


def _ordered(start: TimeBound, end: TimeBound) -> bool:
    if end.inclusive:
        return start.moment <= end.moment
    return start.moment < end.moment
