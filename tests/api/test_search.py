"""GET /api/audit-logs/search/ against the real OpenSearch."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.api.query import SUMMARY_FIELDS
from tests.api.conftest import IndexRecords

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"
BASE = dt.datetime(2026, 1, 31, 23, 0, tzinfo=dt.UTC)


def at(minutes: float) -> str:
    """A timestamp ``minutes`` after BASE (crossing from the 2026.01 into the 2026.02 index)."""
    return (BASE + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["log_id"] for item in response.json()["results"]]


@pytest.fixture
def sample(index_records: IndexRecords) -> dict[str, dict[str, Any]]:
    """A small, varied set of records, by name."""
    specs: dict[str, dict[str, Any]] = {
        "create_john": {
            "timestamp": at(0),
            "action": "CREATE",
            "user_id": "user_1",
            "username": "john.doe",
            "object_type": "Customer",
            "object_id": "cus_1",
            "object_repr": "John Smith",
            "change_message": "Created new customer",
            "ip_address": "10.0.0.5",
        },
        "update_john": {
            "timestamp": at(30),
            "action": "UPDATE",
            "user_id": "user_1",
            "username": "john.doe",
            "object_type": "Customer",
            "object_id": "cus_1",
            "object_repr": "John Smith",
            "change_message": "Changed the billing address",
            "ip_address": "10.0.1.7",
        },
        "delete_jane": {
            "timestamp": at(60),
            "action": "DELETE",
            "user_id": "user_2",
            "username": "Jane Roe",
            "object_type": "Invoice",
            "object_id": "inv_9",
            "object_repr": "Invoice 2026-009",
            "change_message": "Deleted a draft invoice",
            "ip_address": "2001:db8::1",
        },
        "login_umlaut": {
            "timestamp": at(90),
            "action": "LOGIN",
            "user_id": "user_3",
            "username": "Jöhn Müller",
            "object_type": "Session",
            "object_id": "a:b OR (",
            "object_repr": "日本語のセッション",
            "change_message": "Logged in from Zürich",
            "ip_address": "192.168.1.20",
        },
        "update_invoice": {
            "timestamp": at(120),
            "action": "UPDATE",
            "user_id": "user_2",
            "username": "Jane Roe",
            "object_type": "Invoice",
            "object_id": "inv_9",
            "object_repr": 'Invoice "quoted" \\ back',
            "change_message": "Marked the invoice paid",
        },
    }
    records = index_records(list(specs.values()))
    return dict(zip(specs, records, strict=True))


def names(sample: dict[str, dict[str, Any]], response: Any) -> list[str]:
    by_id = {record["log_id"]: name for name, record in sample.items()}
    return [by_id[log_id] for log_id in ids(response)]


def test_no_filter_lists_all_newest_first_across_monthly_indices(
    client: TestClient, sample: dict[str, dict[str, Any]]
) -> None:
    response = client.get(SEARCH)
    assert names(sample, response) == [
        "update_invoice",
        "login_umlaut",
        "delete_jane",
        "update_john",
        "create_john",
    ]
    body = response.json()
    assert body["count"] == 5
    assert body["page_size"] == 20
    assert body["from_offset"] == 0
    assert body["next"] is None
    assert response.headers["cache-control"] == "no-store"


def test_results_carry_exactly_the_summary_fields(
    client: TestClient, sample: dict[str, dict[str, Any]]
) -> None:
    results = client.get(SEARCH, params={"object_id": "cus_1"}).json()["results"]
    assert len(results) == 2
    for result in results:
        assert tuple(result) == SUMMARY_FIELDS
        record = next(r for r in sample.values() if r["log_id"] == result["log_id"])
        assert result == {name: record[name] for name in SUMMARY_FIELDS}


def check_cases(
    client: TestClient,
    sample: dict[str, dict[str, Any]],
    cases: list[tuple[dict[str, str], list[str]]],
) -> None:
    # One indexed sample serves a table of cases: indexing per case would cost seconds each.
    for params, expected in cases:
        response = client.get(SEARCH, params=params)
        assert names(sample, response) == expected, params
        assert response.json()["count"] == len(expected), params


def test_each_filter_alone(client: TestClient, sample: dict[str, dict[str, Any]]) -> None:
    check_cases(
        client,
        sample,
        [
            ({"user_id": "user_1"}, ["update_john", "create_john"]),
            ({"user_id": "user_"}, []),
            ({"username": "Jane Roe"}, ["update_invoice", "delete_jane"]),
            ({"username": "jane roe"}, []),
            ({"username": "Jane"}, []),
            ({"username": "Jöhn Müller"}, ["login_umlaut"]),
            ({"action": "UPDATE"}, ["update_invoice", "update_john"]),
            ({"action": "update"}, []),
            ({"object_type": "Invoice"}, ["update_invoice", "delete_jane"]),
            ({"object_id": "cus_1"}, ["update_john", "create_john"]),
            ({"object_id": "a:b OR ("}, ["login_umlaut"]),
            ({"ip_address": "10.0.0.5"}, ["create_john"]),
            ({"ip_address": "10.0.0.0/16"}, ["update_john", "create_john"]),
            ({"ip_address": "10.0.1.99/24"}, ["update_john"]),
            ({"ip_address": "2001:db8:0:0::1"}, ["delete_jane"]),
            ({"ip_address": "2001:db8::/32"}, ["delete_jane"]),
            ({"ip_address": "10.0.0.6"}, []),
            ({"start_time": at(90)}, ["update_invoice", "login_umlaut"]),
            ({"end_time": at(30)}, ["update_john", "create_john"]),
            ({"search_term": "billing"}, ["update_john"]),
        ],
    )


def test_filters_combine_with_and(client: TestClient, sample: dict[str, dict[str, Any]]) -> None:
    check_cases(
        client,
        sample,
        [
            ({"user_id": "user_1", "action": "UPDATE"}, ["update_john"]),
            (
                {"user_id": "user_2", "action": "UPDATE", "object_type": "Invoice"},
                ["update_invoice"],
            ),
            ({"user_id": "user_2", "object_type": "Customer"}, []),
            (
                {"object_id": "inv_9", "username": "Jane Roe", "ip_address": "2001:db8::1"},
                ["delete_jane"],
            ),
            ({"action": "UPDATE", "search_term": "billing"}, ["update_john"]),
            ({"action": "DELETE", "search_term": "billing"}, []),
            ({"action": "UPDATE", "start_time": at(31)}, ["update_invoice"]),
            (
                {"object_type": "Customer", "ip_address": "10.0.0.0/8", "end_time": at(29)},
                ["create_john"],
            ),
            (
                {"start_time": at(30), "end_time": at(90)},
                ["login_umlaut", "delete_jane", "update_john"],
            ),
            (
                {
                    "user_id": "user_1",
                    "username": "john.doe",
                    "action": "CREATE",
                    "object_type": "Customer",
                    "object_id": "cus_1",
                    "ip_address": "10.0.0.5",
                    "start_time": at(0),
                    "end_time": at(0),
                    "search_term": "customer",
                },
                ["create_john"],
            ),
        ],
    )


def test_free_text_matches_words_prefixes_and_whole_keywords(
    client: TestClient, sample: dict[str, dict[str, Any]]
) -> None:
    cases: list[tuple[str, list[str]]] = [
        # Words of username, object_repr, change_message; case does not matter.
        ("billing", ["update_john"]),
        ("BILLING ADDRESS", ["update_john"]),
        ("smith john", ["update_john", "create_john"]),
        # Every word must match, across fields.
        ("john billing", ["update_john"]),
        ("john nobody", []),
        # The last word may be the start of a word.
        ("inv", ["update_invoice", "delete_jane"]),
        ("marked the inv", ["update_invoice"]),
        # Non-ASCII.
        ("jöhn", ["login_umlaut"]),
        ("Zürich", ["login_umlaut"]),
        ("日本", ["login_umlaut"]),
        ("セッション", ["login_umlaut"]),
        # The whole value of object_type, object_id or username (keyword fields).
        ("Customer", ["update_john", "create_john"]),
        ("cus_1", ["update_john", "create_john"]),
        ("john.doe", ["update_john", "create_john"]),
        # Query syntax is only text: no operators, no fields, no wildcards.
        ("a:b OR (", ["login_umlaut"]),  # equal to that record's object_id
        ("john OR nobody", []),
        ("username:john.doe", []),
        ("Jo*", []),
        ('"quoted"', ["update_invoice"]),
        ("  billing  ", ["update_john"]),
    ]
    check_cases(client, sample, [({"search_term": term}, expected) for term, expected in cases])


HOSTILE_TERMS = [
    "a:b OR (",
    "*",
    '"',
    "\\",
    "/",
    "[",
    "{",
    "}",
    "(",
    ")",
    "~1",
    "^2",
    "-x",
    "+x",
    "&&",
    "||",
    "!",
    "?",
    "a AND NOT b",
    "field:value*",
    "/.*/",
    "<script>alert(1)</script>",
    "%",
    "%00",
    "\x00",
    "a\u2028b",
    "'; DROP TABLE audit; --",
    '{"query": {"match_all": {}}}',
    "日" * 100,  # one clause per character: the worst case for the clause limit
    " ".join(["a"] * 50),
    "x" * 100,
]


def test_hostile_free_text_gives_results_or_nothing_never_an_error(
    client: TestClient, sample: dict[str, dict[str, Any]]
) -> None:
    for term in HOSTILE_TERMS:
        response = client.get(SEARCH, params={"search_term": term})
        assert response.status_code == 200, (term, response.text)
        body = response.json()
        assert body["count"] == len(body["results"]) <= len(sample), term


def test_time_bounds_are_inclusive_to_the_microsecond(
    client: TestClient, index_records: IndexRecords
) -> None:
    # Three records within one millisecond, and one a day later.
    edge = "2026-03-10T12:00:00.000400Z"
    records = index_records(
        [
            {"action": "A", "timestamp": "2026-03-10T12:00:00.000300Z"},
            {"action": "B", "timestamp": edge},
            {"action": "C", "timestamp": "2026-03-10T12:00:00.000500Z"},
            {"action": "D", "timestamp": "2026-03-11T00:00:00.000000Z"},
        ]
    )
    by_action = {record["log_id"]: record["action"] for record in records}

    def actions(**params: str) -> list[str]:
        return [by_action[log_id] for log_id in ids(client.get(SEARCH, params=params))]

    assert actions(start_time=edge, end_time=edge) == ["B"]
    assert actions(start_time=edge) == ["D", "C", "B"]
    assert actions(end_time=edge) == ["B", "A"]
    assert actions(start_time="2026-03-10T12:00:00.000401Z") == ["D", "C"]
    assert actions(end_time="2026-03-10T12:00:00.000399Z") == ["A"]
    # Naive means UTC; an offset is honoured.
    assert actions(start_time="2026-03-10T12:00:00.0004", end_time="2026-03-10T12:00:00.0004") == [
        "B"
    ]
    assert actions(
        start_time="2026-03-10T14:00:00.000400+02:00", end_time="2026-03-10T07:00:00.000400-05:00"
    ) == ["B"]
    # A date alone: from the start of that day, to the end of that day.
    assert actions(start_time="2026-03-10", end_time="2026-03-10") == ["C", "B", "A"]
    assert actions(start_time="2026-03-11") == ["D"]
    assert actions(end_time="2026-03-11") == ["D", "C", "B", "A"]
    assert actions(end_time="2026-03-09") == []
    # Bounds within months that have no index: nothing, not an error.
    assert actions(start_time="2026-05-01", end_time="2026-06-30") == []
    assert actions(start_time="2026-02-01", end_time="2026-03-10T12:00:00.0003Z") == ["A"]
    # Far-away bounds (outside what OpenSearch's date_nanos holds) are not errors.
    assert actions(start_time="1900-01-01", end_time="9999-12-31") == ["D", "C", "B", "A"]
    assert actions(end_time="1969-12-31T23:59:59Z") == []
    assert actions(start_time="2300-01-01") == []


def test_no_index_yet_is_an_empty_result(client: TestClient) -> None:
    response = client.get(SEARCH, params={"action": "CREATE", "search_term": "x"})
    assert response.status_code == 200
    assert response.json() == {
        "count": 0,
        "page_size": 20,
        "from_offset": 0,
        "next": None,
        "results": [],
        "tiers": ["index"],
        "notices": [response.json()["notices"][0]],
    }
    assert "start_time" in response.json()["notices"][0]


def many(count: int, *, same_timestamp_every: int = 7) -> list[dict[str, Any]]:
    """``count`` records in 2026-04, with runs of equal timestamps to exercise the tie-break."""
    start = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    return [
        {
            "action": "UPDATE",
            "user_id": f"user_{i % 13}",
            "object_type": "Thing",
            "object_id": str(i),
            "timestamp": start + dt.timedelta(seconds=i // same_timestamp_every),
        }
        for i in range(count)
    ]


def expected_order(records: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(records, key=lambda r: (r["timestamp"], r["log_id"]), reverse=True)
    return [record["log_id"] for record in ordered]


def test_paging_with_offsets_and_with_the_cursor_has_no_gaps_or_repeats(
    client: TestClient, index_records: IndexRecords
) -> None:
    records = index_records(many(250))
    expected = expected_order(records)

    by_offset: list[str] = []
    for offset in range(0, 250, 100):
        response = client.get(SEARCH, params={"page_size": 100, "from_offset": offset})
        body = response.json()
        assert body["count"] == 250 and body["from_offset"] == offset
        by_offset.extend(ids(response))
    assert by_offset == expected

    by_cursor: list[str] = []
    offsets = []
    params: dict[str, Any] = {"page_size": 7}
    while True:
        body = client.get(SEARCH, params=params).json()
        offsets.append(body["from_offset"])
        by_cursor.extend(item["log_id"] for item in body["results"])
        if body["next"] is None:
            break
        params = {"page_size": 7, "cursor": body["next"]}
    assert by_cursor == expected
    assert offsets == list(range(0, 250, 7))

    # A page that ends exactly at the last record says there is no next page.
    last = client.get(SEARCH, params={"page_size": 50, "from_offset": 200}).json()
    assert len(last["results"]) == 50 and last["next"] is None


def test_the_cursor_goes_past_10000_results(
    client: TestClient, os_client: Any, index_records: IndexRecords
) -> None:
    records = index_records(many(10_100, same_timestamp_every=3))
    expected = expected_order(records)

    page = client.get(SEARCH, params={"page_size": 100, "from_offset": 9_900}).json()
    assert page["count"] == 10_100  # exact, not "10,000+"
    assert [item["log_id"] for item in page["results"]] == expected[9_900:10_000]
    too_deep = client.get(SEARCH, params={"page_size": 100, "from_offset": 9_901})
    assert too_deep.status_code == 400
    assert too_deep.json()["error"]["field"] == "from_offset"

    seen = [item["log_id"] for item in page["results"]]
    while page["next"] is not None:
        page = client.get(SEARCH, params={"page_size": 100, "cursor": page["next"]}).json()
        assert page["from_offset"] == 9_900 + len(seen)
        seen.extend(item["log_id"] for item in page["results"])
    assert seen == expected[9_900:]
    assert len(seen) == len(set(seen)) == 200
