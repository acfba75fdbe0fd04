"""The filters a search of audit records takes, declared once, and their strict parsing.

The API's search route reads these filters, and a reader of the archive is to read the same
ones with the same checks, so this module sits below both: it knows the record, its schema
and the settings, nothing of the API, the consumer, the archive or the capture side.
:data:`FILTER_PARAMS` is the table of them; the API adds its paging parameters to it and
lists them all in its OpenAPI document.

Anything unexpected is refused rather than guessed at (empty or over-long values, bad times
and addresses), naming the parameter, so a typo never silently widens a search. The
``session`` filter takes a live credential (the raw session key), so it is turned into its
stored form at once and never kept, shown or echoed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from audit_logging.errors import FilterError, shown
from audit_logging.record import STRING_LIMITS
from audit_logging.session_key import stored_session_key

if TYPE_CHECKING:
    from audit_logging.settings import Settings

__all__ = [
    "END_TIME",
    "EXACT_FILTERS",
    "FILTER_NAMES",
    "FILTER_PARAMS",
    "IP_ADDRESS",
    "MAX_IP_LENGTH",
    "MAX_SEARCH_TERM",
    "MAX_SESSION_LENGTH",
    "MAX_TIME_LENGTH",
    "SEARCH_TERM",
    "SESSION",
    "START_TIME",
    "FilterError",
    "Kind",
    "Param",
    "RecordFilter",
    "SessionLookup",
    "TimeBound",
    "parse_filter",
    "rfc3339",
    "session_lookup",
    "stores_no_session_keys",
]

# Free text is analysed into one query clause per word and field; this bound keeps the
# worst case (one word per CJK character) well under OpenSearch's 1,024-clause limit.
MAX_SEARCH_TERM: Final = 100
MAX_TIME_LENGTH: Final = 64
MAX_IP_LENGTH: Final = 64
# A browser keeps a cookie of up to 4096 bytes (RFC 6265, 6.1): no session key is longer.
MAX_SESSION_LENGTH: Final = 4096
# What the document promises of a network; the parser asks the ipaddress module instead.
_CIDR_PATTERN: Final = "^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
# The record field the session filter looks in, and what the read's own record says of it.
_SESSION_FIELD: Final = "session_key"
_SESSION_GIVEN: Final = "given"

# text: a non-empty string; ip: an address or CIDR network; time: ISO 8601 date or time;
# count: a whole number (a reader's paging).
Kind = Literal["text", "ip", "time", "count"]

# The stored form of a raw session key, as capture stores it; None if none is stored.
SessionLookup = Callable[[str], str | None]


@dataclasses.dataclass(frozen=True)
class Param:
    """A parameter of a search: what the parser enforces, what the documents say."""

    name: str
    kind: Kind
    doc: str
    # The most characters of a value, or for a count its largest value.
    limit: int
    minimum: int = 0  # counts only
    default: int = 0  # counts only
    # A regular expression the whole value matches (documented; the parser checks it itself).
    pattern: str | None = None
    # A credential: never stored, logged or echoed.
    secret: bool = False

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
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.secret:
            schema["format"] = "password"  # a hint to clients to hide what is typed
        return schema


def _exact(name: str, doc: str) -> Param:
    # The record's own limit: a longer value could never match.
    return Param(name, "text", doc, STRING_LIMITS[name])


_TIME_DOC: Final = (
    "ISO 8601 date or date-time. A time without a zone is UTC. Both bounds are inclusive;"
    " a date alone stands for the whole (UTC) day, so end_time=2026-01-31 includes the 31st."
)

# Each names the record field it matches exactly.
EXACT_FILTERS: Final = (
    _exact("user_id", "Exact user id."),
    _exact("username", "Exact username (case-sensitive, whole value)."),
    _exact("action", "Exact action, e.g. CREATE, UPDATE, DELETE, LOGIN (case-sensitive)."),
    _exact("object_type", "Exact object type, e.g. Customer."),
    _exact("object_id", "Exact object id."),
    _exact("request_id", "Exact request id (the X-Request-ID the middleware stored or made)."),
    _exact("source", "Exact source: the emitting service (AUDIT_LOG_SOURCE)."),
)
SESSION: Final = Param(
    "session",
    "text",
    "The session key exactly as the app's session cookie holds it: the records of that"
    " session. Turned into its stored form (by default an HMAC with AUDIT_LOG_HASH_KEY, as"
    " AUDIT_LOG_SESSION_KEY_MODE says) before the lookup; never stored, logged or echoed."
    " Refused when that mode stores no session keys (drop).",
    MAX_SESSION_LENGTH,
    secret=True,
)
IP_ADDRESS: Final = Param(
    "ip_address",
    "ip",
    "IPv4 or IPv6 address, or a CIDR network such as 10.0.0.0/8 (every address in it)."
    " An IPv4-mapped IPv6 address (::ffff:1.2.3.4) is the IPv4 address it is; a network in"
    " that form needs a prefix of at least 96 (::ffff:1.2.3.0/120 is 1.2.3.0/24).",
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
    " a word when the term ends with it: `stat` finds `status`, `stat.` does not), or whose"
    " username, object_type or object_id equal it. Plain text: no query syntax is interpreted.",
    MAX_SEARCH_TERM,
)
# In the order they are checked and documented.
FILTER_PARAMS: Final = (*EXACT_FILTERS, SESSION, IP_ADDRESS, START_TIME, END_TIME, SEARCH_TERM)
FILTER_NAMES: Final = tuple(param.name for param in FILTER_PARAMS)


@dataclasses.dataclass(frozen=True)
class TimeBound:
    moment: dt.datetime  # aware, UTC
    inclusive: bool = True


@dataclasses.dataclass(frozen=True)
class RecordFilter:
    """What a search keeps: the records that match every filter given (AND)."""

    # Record field -> the value it must equal: user_id, username, action, object_type,
    # object_id, request_id, source, and session_key (already in its stored form).
    exact: dict[str, str] = dataclasses.field(default_factory=dict)
    ip_address: str | None = None  # an address or a CIDR network, normalised
    start: TimeBound | None = None
    end: TimeBound | None = None
    search_term: str | None = None

    def filters(self) -> dict[str, Any]:
        """The filters as given (normalised), for the read's own audit record: the session
        only as ``"session": "given"``, never its value, raw or stored."""
        given: dict[str, Any] = {}
        for name, value in self.exact.items():
            if name == _SESSION_FIELD:
                given[SESSION.name] = _SESSION_GIVEN
            else:
                given[name] = value
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

    def __repr__(self) -> str:
        # The stored session key is the raw one in raw mode: keep it out of any traceback.
        exact = {k: ("..." if k == _SESSION_FIELD else v) for k, v in self.exact.items()}
        return (
            f"RecordFilter(exact={exact!r}, ip_address={self.ip_address!r}, "
            f"start={self.start!r}, end={self.end!r}, search_term={self.search_term!r})"
        )


def rfc3339(moment: dt.datetime) -> str:
    """``moment`` (aware, UTC) as RFC 3339 with microseconds, years zero-padded."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def session_lookup(settings: Settings) -> SessionLookup:
    """The stored form of a raw session key under ``settings``, as the middleware and the
    handler store it (AUDIT_LOG_SESSION_KEY_MODE, AUDIT_LOG_HASH_KEY)."""
    return functools.partial(
        stored_session_key, mode=settings.session_key_mode, key=settings.hash_key
    )


def stores_no_session_keys(raw: str) -> str | None:
    """A :data:`SessionLookup` for a reader without session settings: ``session`` is refused."""
    return None


def parse_filter(values: Mapping[str, str], session_key: SessionLookup) -> RecordFilter:
    """The filter ``values`` (parameter name -> value as given) ask for; :class:`FilterError`
    naming the first bad one, in :data:`FILTER_PARAMS`' order. Names that are not filters
    (a reader's paging) are left to the caller. ``session_key`` makes the stored form of a
    raw session key (see :func:`session_lookup`)."""
    exact = {p.name: _text(p, values[p.name]) for p in EXACT_FILTERS if p.name in values}
    if SESSION.name in values:
        exact[_SESSION_FIELD] = _session(values[SESSION.name], session_key)
    ip = _read(values, IP_ADDRESS, _ip)
    start = _read(values, START_TIME, _start)
    end = _read(values, END_TIME, _end)
    if start is not None and end is not None and not _ordered(start, end):
        raise FilterError(START_TIME.name, f"is after {END_TIME.name}")
    term = _read(values, SEARCH_TERM, _search_term)
    return RecordFilter(exact=exact, ip_address=ip, start=start, end=end, search_term=term)


_T = TypeVar("_T")


def _read(values: Mapping[str, str], param: Param, read: Callable[[Param, str], _T]) -> _T | None:
    return read(param, values[param.name]) if param.name in values else None


def _text(param: Param, value: str) -> str:
    if value == "":
        raise FilterError(param.name, "must not be empty (leave it out to not filter on it)")
    if len(value) > param.limit:
        raise FilterError(param.name, f"must be at most {param.limit} characters, got {len(value)}")
    return value


def _session(raw: str, session_key: SessionLookup) -> str:
    # Only lengths are ever said of the value: it is a live credential.
    stored = session_key(_text(SESSION, raw))
    if stored is None:
        raise FilterError(
            SESSION.name,
            "cannot match any record: no session keys are stored here"
            " (AUDIT_LOG_SESSION_KEY_MODE is drop, or hash without AUDIT_LOG_HASH_KEY)",
        )
    # Capture cuts an over-long stored key to the field's limit (raw mode only: a hash is
    # short), so that cut is what a record of this session holds.
    return stored[: STRING_LIMITS[_SESSION_FIELD]]


def _search_term(param: Param, value: str) -> str:
    # The limit applies to the value as given, as the documents say.
    term = _text(param, value).strip()
    if not term:
        raise FilterError(param.name, "must hold more than white space")
    return term


def _ip(param: Param, value: str) -> str:
    # A scope id (fe80::1%eth0) names an interface of the machine that saw the address:
    # records never hold one, and OpenSearch's ip type would reject the query.
    if len(value) <= param.limit and "%" not in value:
        try:
            if "/" not in value:
                return str(_unmapped(ipaddress.ip_address(value)))
            given = ipaddress.ip_interface(value)  # the address as written, and its network
        except ValueError:
            pass
        else:
            return _network(param, value, given)
    raise FilterError(
        param.name, f"must be an IPv4 or IPv6 address or CIDR network, got '{shown(value)}'"
    )


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # OpenSearch's ip type holds an IPv4-mapped IPv6 address (::ffff:1.2.3.4) as the IPv4
    # address it is: both spellings find the same records, so the filter says the plain one.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network(
    param: Param, value: str, given: ipaddress.IPv4Interface | ipaddress.IPv6Interface
) -> str:
    """A CIDR network, normalised; one written in IPv4-mapped form as the IPv4 network it is
    (OpenSearch refuses that form, since its prefix could be meant for either)."""
    # A network with host bits set (10.1.2.3/16) means the network it lies in.
    network, written = given.network, given.ip
    if isinstance(written, ipaddress.IPv6Address) and written.ipv4_mapped is not None:
        if network.prefixlen < 96:
            # ::ffff:1.2.3.0/24 is ::/24 to IPv6, which holds far more than IPv4 addresses:
            # the likely meaning (1.2.3.0/24) is not what it says, so neither is guessed.
            raise FilterError(
                param.name,
                f"is an IPv4-mapped address with a prefix shorter than 96, got '{shown(value)}':"
                " write the IPv4 network (such as 1.2.3.0/24) or an IPv6 one",
            )
        first = network.network_address  # its first 96 bits are the given address's
        assert isinstance(first, ipaddress.IPv6Address)
        assert first.ipv4_mapped is not None
        return str(ipaddress.IPv4Network((first.ipv4_mapped, network.prefixlen - 96)))
    return str(network)


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
    raise FilterError(
        param.name,
        f"must be an ISO 8601 date or time such as 2026-01-31T23:59:59Z, got '{shown(value)}'",
    )


def _ordered(start: TimeBound, end: TimeBound) -> bool:
    if end.inclusive:
        return start.moment <= end.moment
    return start.moment < end.moment
