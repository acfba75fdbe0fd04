"""Which tier answers which part of a search: the index holds the retained months, the
archive everything; a search reaching past the oldest retained month reads the rest from the
archive.

The split is at the first moment of the oldest retained month, so every record the index
answers is newer than every record the archive answers: newest-first results are the
index's, then the archive's, and one offset or cursor runs across both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from audit_logging.record_filter import RecordFilter, TimeBound
from audit_logging.schema import FIELDS
from audit_logging.search_index import first_retained_day

INDEX: Final = "index"
ARCHIVE: Final = "archive"
# The fields a visibility term means the same on in both tiers: the index's whole-value
# (keyword) string fields, by name, and username through its keyword subfield. A term on a
# text field matches one analysed word in the index, so the archive cannot apply it.
_TERM_FIELDS: Final = {
    **{f.name: f.name for f in FIELDS if f.search == "keyword" and f.kind in ("string", "uuid")},
    "username.keyword": "username",
}


def retained_since(today: dt.date, months: int) -> dt.datetime:
    """The first moment of the oldest month the index keeps (AUDIT_LOG_RETENTION_MONTHS)."""
    day = first_retained_day(months, today)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class Split:
    index: RecordFilter | None  # the part at or after the boundary, if any
    archive: RecordFilter | None  # the part before it, if any


def split(search: RecordFilter, boundary: dt.datetime) -> Split:
    starts_before = search.start is None or search.start.moment < boundary
    ends_after = search.end is None or (
        search.end.moment > boundary or (search.end.moment == boundary and search.end.inclusive)
    )
    index = None
    if ends_after:
        start = search.start if not starts_before else TimeBound(boundary)
        index = dataclasses.replace(search, start=start)
    archive = None
    if starts_before:
        end = search.end if not ends_after else TimeBound(boundary, inclusive=False)
        archive = dataclasses.replace(search, end=end)
    return Split(index, archive)


def archive_visibility(visible_filter: Mapping[str, Any] | None) -> dict[str, str] | None:
    """A caller's visibility filter as exact field values the archive can apply, ``{}`` for
    none; None when it is a query the archive cannot apply (that caller then sees the
    index alone, and the response says so). Understood: ``{"term": {field: value}}`` and
    a ``bool`` whose ``filter`` or ``must`` lists only such terms."""
    if visible_filter is None:
        return {}
    clauses = _conjunction(visible_filter)
    if clauses is None:
        return None
    exact: dict[str, str] = {}
    for clause in clauses:
        term = _term(clause)
        if term is None or exact.get(term[0], term[1]) != term[1]:
            # Not a term, or two values for one field (the index finds nothing, and alone).
            return None
        exact[term[0]] = term[1]
    return exact


def _conjunction(query: Mapping[str, Any]) -> list[Any] | None:
    if set(query) != {"bool"}:
        return [query]
    body = query["bool"]
    if not isinstance(body, Mapping) or not set(body) <= {"filter", "must"}:
        return None
    clauses: list[Any] = []
    for key in ("filter", "must"):
        part = body.get(key, [])
        clauses.extend(part if isinstance(part, list) else [part])
    return clauses


def _term(clause: Any) -> tuple[str, str] | None:
    """(field, value) of ``{"term": {field: value}}`` on a record field, else None."""
    if not isinstance(clause, Mapping) or set(clause) != {"term"}:
        return None
    term = clause["term"]
    if not isinstance(term, Mapping) or len(term) != 1:
        return None
    ((name, value),) = term.items()
    if isinstance(value, Mapping):
        value = value.get("value") if set(value) == {"value"} else None
    field = _TERM_FIELDS.get(str(name))
    if field is None or not isinstance(value, str):
        return None
    return field, value
