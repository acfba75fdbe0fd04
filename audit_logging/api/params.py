"""Strict validation of the query parameters: anything unexpected is a 400 naming it.

Unknown names, repeated names, empty or over-long values, bad times and bad numbers are all
refused rather than guessed at, so a typo never silently widens a search.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from typing import Any, Final

from audit_logging.api.cursor import Cursor, decode_cursor
from audit_logging.api.errors import BadParameterError, shown
from audit_logging.record import STRING_LIMITS

# Exact-match filters and their length limits (the record's own limits).
EXACT_FILTERS: Final[dict[str, int]] = {
    "user_id": STRING_LIMITS["user_id"],
    "username": STRING_LIMITS["username"],
    "action": STRING_LIMITS["action"],
    "object_type": STRING_LIMITS["object_type"],
    "object_id": STRING_LIMITS["object_id"],
}
# Free text is analysed into one query clause per word and field; this bound keeps the
# worst case (one word per CJK character) well under OpenSearch's 1,024-clause limit.
MAX_SEARCH_TERM: Final = 100
MAX_TIME_LENGTH: Final = 64
MAX_IP_LENGTH: Final = 64
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
# OpenSearch's index.max_result_window: from + size may not pass it; the cursor goes deeper.
MAX_WINDOW: Final = 10_000

SEARCH_PARAMETERS: Final = (
    *EXACT_FILTERS,
    "ip_address",
    "start_time",
    "end_time",
    "search_term",
    "page_size",
    "from_offset",
    "cursor",
)
# The cursor carries its own offset, so a from_offset beside it could only contradict it.
OFFSET_WITH_CURSOR: Final = "cannot be combined with cursor: the two exclude each other"
_DIGITS_RE: Final = re.compile(r"[0-9]{1,9}")


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


def parse_search(items: Sequence[tuple[str, str]]) -> SearchParams:
    values = single_values(items, SEARCH_PARAMETERS)
    exact = {
        name: _string(name, values[name], limit)
        for name, limit in EXACT_FILTERS.items()
        if name in values
    }
    ip = _ip(values["ip_address"]) if "ip_address" in values else None
    start = _time("start_time", values["start_time"], end=False) if "start_time" in values else None
    end = _time("end_time", values["end_time"], end=True) if "end_time" in values else None
    if start is not None and end is not None and not _ordered(start, end):
        raise BadParameterError("start_time", "is after end_time")
    term = None
    if "search_term" in values:
        # The limit applies to the value as given, as the OpenAPI document says.
        term = _string("search_term", values["search_term"], MAX_SEARCH_TERM).strip()
        if not term:
            raise BadParameterError("search_term", "must hold more than white space")
    page_size = DEFAULT_PAGE_SIZE
    if "page_size" in values:
        page_size = _int("page_size", values["page_size"], 1, MAX_PAGE_SIZE)
    from_offset = 0
    cursor = None
    if "cursor" in values:
        if "from_offset" in values:
            raise BadParameterError("from_offset", OFFSET_WITH_CURSOR)
        cursor = decode_cursor(values["cursor"])
    elif "from_offset" in values:
        from_offset = _int("from_offset", values["from_offset"], 0, MAX_WINDOW - 1)
        if from_offset + page_size > MAX_WINDOW:
            raise BadParameterError(
                "from_offset",
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


def _string(name: str, value: str, limit: int) -> str:
    if value == "":
        raise BadParameterError(name, "must not be empty (leave it out to not filter on it)")
    if len(value) > limit:
        raise BadParameterError(name, f"must be at most {limit} characters, got {len(value)}")
    return value


def _int(name: str, value: str, lo: int, hi: int) -> int:
    if not _DIGITS_RE.fullmatch(value):
        raise BadParameterError(
            name, f"must be a whole number from {lo} to {hi}, got '{shown(value)}'"
        )
    number = int(value)
    if not lo <= number <= hi:
        raise BadParameterError(name, f"must be from {lo} to {hi}, got {number}")
    return number


def _ip(value: str) -> str:
    # A scope id (fe80::1%eth0) names an interface of the machine that saw the address:
    # records never hold one, and OpenSearch's ip type would reject the query.
    if len(value) <= MAX_IP_LENGTH and "%" not in value:
        try:
            if "/" in value:
                # A network with host bits set (10.1.2.3/16) means the network it lies in.
                return str(ipaddress.ip_network(value, strict=False))
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise BadParameterError(
        "ip_address", f"must be an IPv4 or IPv6 address or CIDR network, got '{shown(value)}'"
    )


def _time(name: str, value: str, *, end: bool) -> TimeBound:
    """An ISO 8601 time; naive means UTC. A date alone spans its whole (UTC) day, so
    ``end_time=2026-01-31`` includes all of the 31st."""
    if 0 < len(value) <= MAX_TIME_LENGTH:
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
        name, f"must be an ISO 8601 date or time such as 2026-01-31T23:59:59Z, got '{shown(value)}'"
    )


def _ordered(start: TimeBound, end: TimeBound) -> bool:
    if end.inclusive:
        return start.moment <= end.moment
    return start.moment < end.moment
