"""A search's filters as a pyarrow expression over the archive's columns, matching what the
index matches, so a search answers the same whichever tier holds the records.

Exact filters compare whole values (case-sensitive, as the index's keyword fields do). Free
text follows the index's query: every word of the term, whole, in any of the text fields;
or every word in one text field, the last one possibly only a word's start; or the whole
term equal to one of the keyword fields. Words are what the index's analyzer makes of a
text (Lucene's standard tokenizer, then a lowercase filter): the term is cut in Python
(:mod:`audit_logging.archive.word_break`) and each word is found in the stored text by an
RE2 pattern that checks the boundaries around it and matches exactly the cases the
lowercase filter folds together (:mod:`audit_logging.archive.word_patterns`). What is
left over is listed in word_break's docstring.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from audit_logging import schema
from audit_logging.archive.word_break import lower, spans
from audit_logging.archive.word_patterns import whole_word, word_start

TEXT_FIELDS: Final = schema.TEXT_FIELDS
KEYWORD_FIELDS: Final = ("username", "object_type", "object_id")
_TIMESTAMP: Final[pa.DataType] = pa.timestamp("us", tz="UTC")


class Bound(Protocol):
    @property
    def moment(self) -> dt.datetime: ...
    @property
    def inclusive(self) -> bool: ...


class Filter(Protocol):
    """What the archive needs of a search's filters
    (:class:`audit_logging.record_filter.RecordFilter`)."""

    @property
    def exact(self) -> dict[str, str]: ...
    @property
    def ip_address(self) -> str | None: ...
    @property
    def start(self) -> Bound | None: ...
    @property
    def end(self) -> Bound | None: ...
    @property
    def search_term(self) -> str | None: ...


def _moment(value: dt.datetime) -> pa.Scalar[Any]:
    return pa.scalar(value.astimezone(dt.UTC), _TIMESTAMP)


def pushed_down(search: Filter) -> ds.Expression | None:
    """The cheap part of the filters (whole values, time bounds): given to the scan, it
    lets row-group statistics skip data and keeps the rows the rest is evaluated on few."""
    parts: list[ds.Expression] = [ds.field(name) == value for name, value in search.exact.items()]
    if search.ip_address is not None and "/" not in search.ip_address:
        parts.append(ds.field("ip_address").isin(_spellings(search.ip_address)))
    if search.start is not None:
        parts.append(ds.field("timestamp") >= _moment(search.start.moment))
    if search.end is not None:
        end = _moment(search.end.moment)
        parts.append(ds.field("timestamp") <= end if search.end.inclusive
                     else ds.field("timestamp") < end)
    return _all(parts)


def residual(search: Filter) -> ds.Expression | None:
    """The costly part (free text: regular expressions), to evaluate only on the rows the
    pushed-down part kept (Arrow evaluates every part of an expression on every row)."""
    return free_text(search.search_term) if search.search_term is not None else None


def residual_columns(search: Filter) -> tuple[str, ...]:
    """The columns :func:`residual` and :func:`ip_mask` read."""
    columns: tuple[str, ...] = ()
    if search.search_term is not None:
        columns += (*TEXT_FIELDS, *KEYWORD_FIELDS)
    if search.ip_address is not None and "/" in search.ip_address:
        columns += ("ip_address",)
    return columns


def before(timestamp: dt.datetime, log_id: str) -> ds.Expression:
    """Records after (timestamp, log_id) in newest-first order: a cursor's next page."""
    moment = _moment(timestamp)
    return (ds.field("timestamp") < moment) | (
        (ds.field("timestamp") == moment) & (ds.field("log_id") < log_id)
    )


def words(term: str) -> list[str]:
    """The words the index makes of ``term``, as given (the index holds them lowercase)."""
    return [term[start:end] for start, end in spans(term)]


def _word_pattern(word: str, *, prefix: bool) -> str:
    folded = "".join(map(lower, word))
    return word_start(folded) if prefix else whole_word(folded)


def free_text(term: str) -> ds.Expression:
    """As the index's query: every word, whole, each in any of the text fields; or every
    word in one text field, the last one possibly a word's start (only when the term ends
    with it: ``stat`` finds ``status``, ``stat.`` does not); or the term equal to a
    keyword field. For n words and f text fields: 2·n·f regular expressions (n·f when the
    last word is whole)."""
    cut = spans(term)
    found = [term[start:end] for start, end in cut]
    equal = [ds.field(name) == term for name in KEYWORD_FIELDS]
    if not found:
        return _any(equal)
    whole = [_word_pattern(word, prefix=False) for word in found]
    across_fields = _all([_any([_regex(name, p) for name in TEXT_FIELDS]) for p in whole])
    assert across_fields is not None
    if cut[-1][1] < len(term):
        # Every word whole in one field is every word whole in some field: nothing to add.
        return _any([*equal, across_fields])
    started = [*whole[:-1], _word_pattern(found[-1], prefix=True)]
    in_one_field = [_all([_regex(name, p) for p in started]) for name in TEXT_FIELDS]
    return _any([*equal, across_fields, *[e for e in in_one_field if e is not None]])


def _regex(name: str, pattern: str) -> ds.Expression:
    # Case is in the pattern: RE2's own case folding is not the index's lowercase filter.
    return pc.match_substring_regex(ds.field(name), pattern)


Column: TypeAlias = "pa.Array[Any] | pa.ChunkedArray[Any]"


def ip_mask(search: Filter) -> Callable[[Column], Column] | None:
    """For an IP network, a function from an ``ip_address`` column to the mask of the
    addresses in it (None when the search has no network). Each distinct address is
    checked once."""
    value = search.ip_address
    if value is None or "/" not in value:
        return None
    network = _as_ipv6(ipaddress.ip_network(value, strict=False))

    def inside(column: Column) -> Column:
        kept = [a for a in pc.unique(column).to_pylist() if _in(a, network)]
        found = pc.is_in(column, value_set=pa.array(kept, pa.string()))
        mask = pc.fill_null(found, pa.scalar(False))
        assert not isinstance(mask, pa.Scalar)
        return mask

    return inside


def _in(address: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if not isinstance(address, str):
        return False
    try:
        found = ipaddress.ip_address(address)
    except ValueError:  # the archive holds checked addresses; a damaged file matches nothing
        return False
    return _as_ipv6(ipaddress.ip_network(found)).network_address in _as_ipv6(network)


# The index's ip type holds every address in 16 bytes, an IPv4 address as IPv4-mapped IPv6
# (::ffff:1.2.3.4): 1.2.3.4 and ::ffff:1.2.3.4 are one address there, 0.0.0.0/0 holds both,
# and so does an IPv6 network over ::ffff:0:0/96 (::/80). Compared in that space, as there.
_MAPPED: Final = 0xFFFF << 32


def _as_ipv6(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    if isinstance(network, ipaddress.IPv6Network):
        return network
    return ipaddress.IPv6Network((_MAPPED | int(network.network_address), network.prefixlen + 96))


def _spellings(value: str) -> list[str]:
    """Every way a record may hold the address ``value``: an IPv4 address also as
    IPv4-mapped IPv6, as capture keeps one given so, in the form each Python writes it
    (``::ffff:102:304`` until 3.12, ``::ffff:1.2.3.4`` since 3.13)."""
    address = ipaddress.ip_address(value)
    v4 = address if isinstance(address, ipaddress.IPv4Address) else address.ipv4_mapped
    if v4 is None:
        return [str(address)]
    mapped = ipaddress.IPv6Address(_MAPPED | int(v4))
    return list(dict.fromkeys([str(v4), str(mapped), f"::ffff:{v4}"]))


def _all(parts: list[ds.Expression]) -> ds.Expression | None:
    if not parts:
        return None
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part
    return combined


def _any(parts: list[ds.Expression]) -> ds.Expression:
    combined = parts[0]
    for part in parts[1:]:
        combined = combined | part
    return combined
