"""OpenSearch request bodies for the search and detail routes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from audit_logging import schema
from audit_logging.api.params import SearchParams
from audit_logging.record_filter import RecordFilter, TimeBound, rfc3339
from audit_logging.search_index import index_for, index_pattern

SUMMARY_FIELDS: Final = schema.SUMMARY_FIELDS
# Free text: analysed words in these text fields ...
TEXT_FIELDS: Final = schema.TEXT_FIELDS
# ... or the whole term equal to one of these keyword fields.
KEYWORD_FIELDS: Final = ("username.keyword", "object_type", "object_id")

# Newest first; log_id breaks ties so pages never overlap or skip. numeric_type keeps the
# sort values in nanoseconds even if an older index maps timestamp as a millisecond date.
SORT: Final = (
    {"timestamp": {"order": "desc", "numeric_type": "date_nanos", "unmapped_type": "date_nanos"}},
    {"log_id": {"order": "desc", "unmapped_type": "keyword"}},
)
# What OpenSearch's date_nanos can hold; bounds outside it are clamped, not sent.
_NANOS_MIN: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NANOS_MAX: Final = dt.datetime(2262, 4, 11, tzinfo=dt.UTC)
_MATCH_NONE: Final[dict[str, Any]] = {"match_none": {}}

# Beyond this many months a list of index names is no cheaper than the wildcard.
MAX_LISTED_MONTHS: Final = 36

# Trims the response to what the API reads, which saves OpenSearch and us JSON work.
SEARCH_FILTER_PATH: Final = "hits.total.value,hits.hits._source,hits.hits.sort"
DETAIL_FILTER_PATH: Final = "hits.hits._source"


def search_indices(prefix: str, params: SearchParams) -> str:
    """Where a search goes: with both time bounds, only the monthly indices they span (a
    record lives in the index of its timestamp's month), else every monthly index.

    Fewer shards is less work: about a fifth off this query's median at 1M records."""
    if params.start is None or params.end is None:
        return index_pattern(prefix)
    first = params.start.moment
    last = params.end.moment
    if not params.end.inclusive:
        last -= dt.timedelta(microseconds=1)
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    if not 0 < months <= MAX_LISTED_MONTHS:
        return index_pattern(prefix)
    names = []
    year, month = first.year, first.month
    for _ in range(months):
        names.append(index_for(prefix, dt.datetime(year, month, 1, tzinfo=dt.UTC)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return ",".join(names)


def search_body(params: SearchParams, visible_filter: Mapping[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"bool": {"filter": _clauses(params.record_filter, visible_filter)}},
        "sort": list(SORT),
        "size": params.page_size,
        "track_total_hits": True,
        "_source": list(SUMMARY_FIELDS),
    }
    if params.cursor is not None:
        body["search_after"] = params.cursor.search_after()
    elif params.from_offset:
        body["from"] = params.from_offset
    return body


def detail_body(log_id: str, visible_filter: Mapping[str, Any] | None) -> dict[str, Any]:
    clauses: list[Any] = [{"term": {"log_id": log_id}}]
    if visible_filter is not None:
        clauses.append(dict(visible_filter))
    return {"query": {"bool": {"filter": clauses}}, "size": 1}


def _clauses(record_filter: RecordFilter, visible_filter: Mapping[str, Any] | None) -> list[Any]:
    clauses: list[Any] = []
    if visible_filter is not None:
        clauses.append(dict(visible_filter))
    clauses.extend(filter_clauses(record_filter))
    return clauses


def filter_clauses(record_filter: RecordFilter) -> list[Any]:
    """The bool filter clauses that keep exactly the records ``record_filter`` matches."""
    clauses: list[Any] = []
    for name, value in record_filter.exact.items():
        # Every exact field is a keyword (session_key, request_id and source too), but
        # username is analysed text with its exact value in a keyword subfield.
        field = "username.keyword" if name == "username" else name
        clauses.append({"term": {field: value}})
    if record_filter.ip_address is not None:
        # A term query on an ip field takes an address or a CIDR network alike.
        clauses.append({"term": {"ip_address": record_filter.ip_address}})
    time_range = _time_range(record_filter.start, record_filter.end)
    if time_range is not None:
        clauses.append(time_range)
    if record_filter.search_term is not None:
        clauses.append(free_text(record_filter.search_term))
    return clauses


def free_text(term: str) -> dict[str, Any]:
    """Matches records whose text fields hold every word of ``term`` (the last word may be
    the start of a word), or whose keyword fields equal it. The term is analysed as plain
    text, never parsed as query syntax, so ``a:b OR (`` is just three words."""
    should: list[Any] = [
        {
            "multi_match": {
                "query": term,
                "type": "cross_fields",
                "fields": list(TEXT_FIELDS),
                "operator": "and",
            }
        },
        {
            "multi_match": {
                "query": term,
                "type": "bool_prefix",
                "fields": list(TEXT_FIELDS),
                "operator": "and",
            }
        },
    ]
    should.extend({"term": {field: term}} for field in KEYWORD_FIELDS)
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _time_range(start: TimeBound | None, end: TimeBound | None) -> dict[str, Any] | None:
    bounds: dict[str, str] = {}
    if start is not None and start.moment > _NANOS_MIN:
        if start.moment >= _NANOS_MAX:
            return _MATCH_NONE
        bounds["gte"] = rfc3339(start.moment)
    if end is not None and end.moment < _NANOS_MAX:
        if end.moment < _NANOS_MIN or (end.moment == _NANOS_MIN and not end.inclusive):
            return _MATCH_NONE
        bounds["lte" if end.inclusive else "lt"] = rfc3339(end.moment)
    return {"range": {"timestamp": bounds}} if bounds else None
