"""OpenSearch request building, without services."""

from __future__ import annotations

import json
from typing import Any

from audit_logging.api.cursor import Cursor
from audit_logging.api.params import SearchParams, parse_search
from audit_logging.api.query import detail_body, search_body, search_indices


def parse(**values: str) -> SearchParams:
    return parse_search(list(values.items()))


def test_with_both_time_bounds_only_the_spanned_months_are_searched() -> None:
    assert search_indices("p", parse()) == "p-*"
    assert search_indices("p", parse(start_time="2026-03-05")) == "p-*"
    assert search_indices("p", parse(end_time="2026-03-05")) == "p-*"
    one = parse(start_time="2026-03-05T10:00:00Z", end_time="2026-03-31T23:59:59.999999Z")
    assert search_indices("p", one) == "p-2026.03"
    # A date alone as end_time is the whole day: March 31 stays in March.
    assert search_indices("p", parse(start_time="2026-03-05", end_time="2026-03-31")) == "p-2026.03"
    across_year = parse(start_time="2025-11-30T23:00:00-05:00", end_time="2026-02-01T00:00:00Z")
    # 2025-11-30T23:00-05:00 is already December in UTC, the indices' time zone.
    assert search_indices("p", across_year) == "p-2025.12,p-2026.01,p-2026.02"
    three_years = parse(start_time="2024-01-01", end_time="2026-12-31")
    assert search_indices("p", three_years).count(",") == 35
    assert search_indices("p", parse(start_time="2023-12-31", end_time="2026-12-31")) == "p-*"
    assert search_indices("p", parse(start_time="0001-01-01", end_time="9999-12-31")) == "p-*"


def flatten(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_free_text_is_never_parsed_as_query_syntax() -> None:
    body = search_body(parse(search_term='a:b OR ( "x" \\'), None)
    text = flatten(body)
    assert "query_string" not in text
    assert "simple_query_string" not in text
    assert "wildcard" not in text and "regexp" not in text


def test_filters_go_to_filter_context_with_the_stable_sort() -> None:
    body = search_body(parse(user_id="u", username="Jane Roe", ip_address="10.0.0.0/8"), None)
    clauses = body["query"]["bool"]["filter"]
    assert {"term": {"user_id": "u"}} in clauses
    assert {"term": {"username.keyword": "Jane Roe"}} in clauses
    assert {"term": {"ip_address": "10.0.0.0/8"}} in clauses
    assert [next(iter(key)) for key in body["sort"]] == ["timestamp", "log_id"]
    assert body["track_total_hits"] is True
    assert "from" not in body and "search_after" not in body


def test_paging_uses_from_or_search_after() -> None:
    assert search_body(parse(from_offset="40"), None)["from"] == 40
    cursor = Cursor(123, "0190d2a4-5b6c-7d8e-9f00-112233445566", 60)
    body = search_body(SearchParams(cursor=cursor), None)
    assert body["search_after"] == [123, cursor.log_id]
    assert "from" not in body


def test_the_callers_visibility_filter_is_on_every_request() -> None:
    visible = {"term": {"source": "billing"}}
    assert visible in search_body(parse(), visible)["query"]["bool"]["filter"]
    assert visible in search_body(parse(action="X"), visible)["query"]["bool"]["filter"]
    detail = detail_body("0190d2a4-5b6c-7d8e-9f00-112233445566", visible)
    assert visible in detail["query"]["bool"]["filter"]


def test_time_bounds_outside_what_opensearch_holds_are_clamped() -> None:
    def time_clause(**values: str) -> Any:
        clauses = search_body(parse(**values), None)["query"]["bool"]["filter"]
        return next((c for c in clauses if "range" in c or "match_none" in c), None)

    assert time_clause(start_time="1900-01-01", end_time="9999-12-31") is None
    assert time_clause(end_time="1969-12-31") == {"match_none": {}}
    assert time_clause(start_time="2300-01-01") == {"match_none": {}}
    assert time_clause(start_time="2026-01-01T00:00:00+01:00") == {
        "range": {"timestamp": {"gte": "2025-12-31T23:00:00.000000Z"}}
    }
    assert time_clause(end_time="2026-01-31") == {
        "range": {"timestamp": {"lt": "2026-02-01T00:00:00.000000Z"}}
    }
