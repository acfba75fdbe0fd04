"""Searches past the index's retention, answered from both tiers: the real OpenSearch for the
retained months, the real S3 archive before them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers
from starlette.testclient import TestClient

from audit_logging._uuid7 import uuid7_at
from audit_logging.api import create_app
from audit_logging.api.auth import Caller
from audit_logging.api.tiers import archive_visibility, retained_since, split
from audit_logging.archive import layout
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record_filter import RecordFilter, TimeBound
from audit_logging.search_index import expired, index_for, install_template
from audit_logging.settings import Settings
from tests.archive._archive import STREAM, newest_first, put_archive, record_at

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"
DETAIL = "/api/audit-logs/detail/{}/"
RETENTION = 12
UTC = dt.UTC


def boundary() -> dt.datetime:
    return retained_since(dt.datetime.now(UTC).date(), RETENTION)


@dataclasses.dataclass
class Tiers:
    client: TestClient
    records: list[dict[str, Any]]  # every record, in both tiers or the archive alone
    indexed: list[dict[str, Any]]  # those the index still holds


@pytest.fixture
def tiers(api_settings: Settings, os_client: OpenSearch, token: str) -> Iterator[Tiers]:
    settings = dataclasses.replace(api_settings, retention_months=RETENTION)
    line = boundary()
    # 15 months of records, one every ~2 days, some in the same microsecond; the index
    # holds the retained months only, as after the consumer's retention ran.
    first = line - dt.timedelta(days=90)
    records = []
    for i in range(225):
        moment = first + dt.timedelta(days=2, hours=i % 5) * i
        if moment > dt.datetime.now(UTC):
            break
        records.append(record_at(moment, object_id=f"o{i}", user_id=f"u{i % 3}",
                                 change_message=f"Changed step {i}"))
        if i % 20 == 0:
            records.append(record_at(moment, object_id=f"o{i}-twin", user_id=f"u{i % 3}"))
    put_archive(settings, records, per_file=25)
    indexed = [r for r in records if dt.datetime.fromisoformat(r["timestamp"]) >= line]
    install_template(os_client, settings.opensearch_index_prefix)
    actions = [{"_index": index_for(settings.opensearch_index_prefix, r["timestamp"]),
                "_id": r["log_id"], "_source": r} for r in indexed]
    assert helpers.bulk(os_client, actions, refresh="wait_for")[0] == len(indexed)
    assert 0 < len(indexed) < len(records)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        yield Tiers(client, records, indexed)


def ids(results: list[dict[str, Any]]) -> list[str]:
    return [r["log_id"] for r in results]


def test_a_search_across_the_boundary_pages_through_both_tiers_in_one_order(
    tiers: Tiers,
) -> None:
    expected = ids(newest_first(tiers.records))
    since = {"start_time": "2000-01-01"}  # the archive is read for ranges that ask for it
    first = tiers.client.get(SEARCH, params={**since, "page_size": "100"})
    body = first.json()
    assert first.status_code == 200, body
    assert body["count"] == len(expected)
    assert body["tiers"] == ["index", "archive"]
    by_offset = []
    for offset in range(0, len(expected), 37):
        page = tiers.client.get(SEARCH, params={**since, "page_size": "37",
                                                "from_offset": str(offset)}).json()
        by_offset.extend(ids(page["results"]))
    assert by_offset == expected
    by_cursor, cursor = [], None
    while True:
        params: dict[str, Any] = {**since, "page_size": 23}
        if cursor:
            params["cursor"] = cursor
        page = tiers.client.get(SEARCH, params=params).json()
        by_cursor.extend(ids(page["results"]))
        assert page["count"] == len(expected)
        cursor = page["next"]
        if cursor is None:
            break
    assert by_cursor == expected


def test_filters_apply_in_both_tiers_alike(tiers: Tiers) -> None:
    line = boundary()
    cases: list[tuple[dict[str, str], Any]] = [
        ({"user_id": "u1"}, lambda r: r["user_id"] == "u1"),
        # Whole words, the last one possibly a word's start: step 17 and 170 to 179.
        ({"search_term": "changed step 17"},
         lambda r: r["change_message"].startswith("Changed step 17")),
        ({"end_time": (line - dt.timedelta(days=1)).isoformat()},
         lambda r: dt.datetime.fromisoformat(r["timestamp"]) <= line - dt.timedelta(days=1)),
    ]
    for params, keep in cases:
        expected = ids(newest_first([r for r in tiers.records if keep(r)]))
        page = tiers.client.get(SEARCH, params={**params, "start_time": "2000-01-01",
                                                "page_size": "100"}).json()
        assert (page["count"], ids(page["results"])) == (len(expected), expected), params


def test_a_search_before_the_retained_months_reads_the_archive_alone(tiers: Tiers) -> None:
    line = boundary()
    params = {"start_time": "2000-01-01",
              "end_time": (line - dt.timedelta(microseconds=1)).isoformat(), "page_size": "100"}
    page = tiers.client.get(SEARCH, params=params).json()
    assert page["tiers"] == ["archive"]
    old = [r for r in tiers.records if dt.datetime.fromisoformat(r["timestamp"]) < line]
    assert ids(page["results"]) == ids(newest_first(old))
    recent = tiers.client.get(SEARCH, params={"start_time": line.isoformat()}).json()
    assert recent["tiers"] == ["index"] and recent["count"] == len(tiers.indexed)


def test_detail_falls_back_to_the_archive_for_a_record_the_index_no_holds(tiers: Tiers) -> None:
    archived_only = next(r for r in tiers.records if r not in tiers.indexed)
    response = tiers.client.get(DETAIL.format(archived_only["log_id"]))
    assert response.status_code == 200
    assert response.json() == archived_only
    assert response.headers["x-audit-log-tier"] == "archive"
    recent = tiers.indexed[0]
    response = tiers.client.get(DETAIL.format(recent["log_id"]))
    assert response.json() == recent and response.headers["x-audit-log-tier"] == "index"


def test_the_split_is_at_the_oldest_retained_month() -> None:
    assert retained_since(dt.date(2026, 3, 15), 12) == dt.datetime(2025, 3, 1, tzinfo=UTC)
    assert retained_since(dt.date(2026, 1, 1), 1) == dt.datetime(2025, 12, 1, tzinfo=UTC)
    # The line is where the consumer's retention deletes: that month kept, the one before not.
    for today in (dt.date(2026, 1, 31), dt.date(2026, 12, 1), dt.date(2027, 7, 15)):
        for months in (1, 11, 12, 13, 120):
            first = retained_since(today, months)
            day_before = first - dt.timedelta(days=1)
            assert not expired("p", index_for("p", first), months, today)
            assert expired("p", index_for("p", day_before), months, today)
    line = dt.datetime(2025, 3, 1, tzinfo=UTC)
    parts = split(RecordFilter(), line)
    assert parts.index == RecordFilter(start=TimeBound(line))
    assert parts.archive == RecordFilter(end=TimeBound(line, inclusive=False))
    later = RecordFilter(start=TimeBound(line))
    assert split(later, line).archive is None
    before = RecordFilter(end=TimeBound(line, inclusive=False))
    assert split(before, line).index is None
    at_line = RecordFilter(end=TimeBound(line))
    assert split(at_line, line).index == RecordFilter(start=TimeBound(line), end=TimeBound(line))


def test_a_caller_whose_visibility_the_archive_cannot_apply_is_told(
    api_settings: Settings, tiers: Tiers,
) -> None:
    settings = dataclasses.replace(api_settings, retention_months=RETENTION)

    def restricted(headers: Any) -> Caller:
        return Caller("c", "c", {"range": {"timestamp": {"gte": "2000-01-01"}}})

    def by_user(headers: Any) -> Caller:
        return Caller("c", "c", {"term": {"user_id": "u2"}})

    since = {"start_time": "2000-01-01"}
    with TestClient(create_app(settings, authenticator=restricted)) as client:
        page = client.get(SEARCH, params={**since, "page_size": "5"}).json()
        assert page["tiers"] == ["index"] and page["count"] == len(tiers.indexed)
        assert "visibility filter" in page["notices"][0]
        hidden = next(r for r in tiers.records if r not in tiers.indexed)
        assert client.get(DETAIL.format(hidden["log_id"])).status_code == 404
    with TestClient(create_app(settings, authenticator=by_user)) as client:
        page = client.get(SEARCH, params={**since, "page_size": "100"}).json()
        expected = ids(newest_first([r for r in tiers.records if r["user_id"] == "u2"]))
        assert page["tiers"] == ["index", "archive"] and ids(page["results"]) == expected
        other = next(r for r in tiers.records if r not in tiers.indexed and r["user_id"] != "u2")
        assert client.get(DETAIL.format(other["log_id"])).status_code == 404


def test_without_an_archive_bucket_the_response_says_what_it_could_not_read(
    api_settings: Settings, token: str, tiers: Tiers,
) -> None:
    settings = dataclasses.replace(api_settings, s3_bucket=None, retention_months=RETENTION)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get(SEARCH).json()
        assert page["tiers"] == ["index"]
        assert "AUDIT_LOG_AWS_S3_BUCKET" in page["notices"][0]
        recent = client.get(SEARCH, params={"start_time": boundary().isoformat()}).json()
        assert recent["notices"] == []


def test_a_second_engine_reads_the_archive_as_the_api_answers(
    tiers: Tiers, api_settings: Settings,
) -> None:
    """DuckDB over the archive's Hive layout (through pyarrow's S3 dataset) finds the same
    records, in the same order, as the API does across both tiers."""
    import duckdb
    import pyarrow.dataset as ds

    from audit_logging.archive.store import s3_filesystem

    archive = ds.dataset(f"{api_settings.s3_bucket}/{api_settings.s3_prefix}".rstrip("/"),
                         filesystem=s3_filesystem(api_settings), format="parquet",
                         partitioning="hive")
    query = duckdb.connect()
    query.register("audit_logs", archive)
    rows = query.execute(
        "SELECT log_id, year, month, day, strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%d')"
        " FROM audit_logs WHERE user_id = 'u1' ORDER BY timestamp DESC, log_id DESC"
    ).fetchall()
    api: list[str] = []
    cursor = None
    while True:
        params = {"user_id": "u1", "start_time": "2000-01-01", "page_size": "100",
                  **({"cursor": cursor} if cursor else {})}
        page = tiers.client.get(SEARCH, params=params).json()
        api.extend(ids(page["results"]))
        cursor = page["next"]
        if cursor is None:
            break
    assert [row[0] for row in rows] == api
    assert len(api) == len([r for r in tiers.records if r["user_id"] == "u1"])
    # The folders are partitions an engine sees as columns: each row's day is its record's.
    assert all(f"{year}-{int(month):02d}-{int(day):02d}" == day_of
               for _, year, month, day, day_of in rows)


def test_without_start_time_the_archive_is_not_scanned_and_the_answer_says_so(
    tiers: Tiers,
) -> None:
    page = tiers.client.get(SEARCH, params={"page_size": "100"}).json()
    assert page["tiers"] == ["index"] and page["count"] == len(tiers.indexed)
    assert "start_time" in page["notices"][0]


def test_visibility_terms_the_archive_cannot_mean_alike_are_not_applied_to_it() -> None:
    assert archive_visibility({"term": {"user_id": "u1"}}) == {"user_id": "u1"}
    assert archive_visibility({"term": {"username.keyword": "Alice"}}) == {"username": "Alice"}
    assert archive_visibility({"bool": {"filter": [{"term": {"source": {"value": "b"}}}]}}) == {
        "source": "b"}
    # A text field matches one analysed word in the index; other subfields, objects, dates,
    # numbers and lists mean something else or nothing there.
    for field in ("username", "object_repr", "change_message", "object_id.keyword",
                  "changes", "extra", "timestamp", "schema_version", "truncated", "ip_address"):
        assert archive_visibility({"term": {field: "x"}}) is None, field


def test_an_unreadable_archive_leaves_the_index_answer_with_a_notice(
    api_settings: Settings, token: str, tiers: Tiers,
) -> None:
    settings = dataclasses.replace(api_settings, retention_months=RETENTION,
                                   aws_endpoint_url_s3="http://127.0.0.1:9")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get(SEARCH, params={"start_time": "2000-01-01"}).json()
        assert page["tiers"] == ["index"] and page["count"] == len(tiers.indexed)
        assert "could not be read" in page["notices"][0]
        hidden = next(r for r in tiers.records if r not in tiers.indexed)
        response = client.get(DETAIL.format(hidden["log_id"]))
        assert response.status_code == 503 and "Retry-After" in response.headers


def test_a_damaged_archive_file_is_passed_over_with_a_notice(
    api_settings: Settings, tiers: Tiers,
) -> None:
    archived_only = next(r for r in tiers.records if r not in tiers.indexed)
    moment = dt.datetime.fromisoformat(archived_only["timestamp"])
    key = layout.archive_key(api_settings.s3_prefix, STREAM, layout.day_of(archived_only),
                             10**9, 10**9 + 2)
    make_s3_client(api_settings).put_object(Bucket=str(api_settings.s3_bucket), Key=key,
                                            Body=b"not parquet" * 50)
    page = tiers.client.get(SEARCH, params={"start_time": "2000-01-01", "page_size": "1"})
    body = page.json()
    assert page.status_code == 200, body
    assert body["count"] == len(tiers.records) and body["tiers"] == ["index", "archive"]
    assert any("1 archive file(s)" in notice and "cannot be read" in notice
               for notice in body["notices"])
    assert key not in page.text  # the bucket's keys stay in the API's log
    found = tiers.client.get(DETAIL.format(archived_only["log_id"]))
    assert found.status_code == 200 and found.json() == archived_only
    missing = tiers.client.get(DETAIL.format(uuid7_at(moment + dt.timedelta(seconds=1))))
    assert missing.status_code == 500 and "Retry-After" not in missing.headers
    assert "may be in it" in missing.json()["error"]["message"]


def test_an_archive_part_past_its_deadline_leaves_the_index_answer_with_a_notice(
    api_settings: Settings, token: str, tiers: Tiers,
) -> None:
    settings = dataclasses.replace(api_settings, retention_months=RETENTION)
    app = create_app(settings, archive_timeout=0.0)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get(SEARCH, params={"start_time": "2000-01-01"}).json()
    assert page["tiers"] == ["index"] and page["count"] == len(tiers.indexed)
    assert any("deadline" in notice and "narrow the time range" in notice
               for notice in page["notices"])
