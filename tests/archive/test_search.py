"""Searching the archive in the real S3: counts, order, pages and cursors, every filter, one
record by its log_id, and an export's day-by-day reading."""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from opensearchpy import helpers

from audit_logging.api.query import filter_clauses
from audit_logging.api.query import free_text as free_text_query
from audit_logging.archive import search as archive_search
from audit_logging.archive import store as archive_store
from audit_logging.archive.matching import words
from audit_logging.archive.search import After, ArchiveSearch
from audit_logging.archive.store import ArchiveStore, SearchTooLongError
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record_filter import (
    RecordFilter,
    TimeBound,
    parse_filter,
    stores_no_session_keys,
)
from audit_logging.search_index import index_for, index_pattern, install_template
from audit_logging.settings import Settings
from tests._stack import opensearch_client
from tests.archive._archive import newest_first, put_archive, record_at

pytestmark = pytest.mark.services

UTC = dt.UTC
DAY0 = dt.datetime(2025, 3, 30, 22, 0, tzinfo=UTC)


def spread(count: int, every: dt.timedelta, **fields: Any) -> list[dict[str, Any]]:
    return [record_at(DAY0 + every * i, object_id=f"obj_{i}", **fields) for i in range(count)]


@pytest.fixture
def archived(settings: Settings) -> tuple[ArchiveSearch, list[dict[str, Any]]]:
    # 300 records, one every 17 minutes: 5 days, several files a day; two users; some at
    # the same microsecond, so log_id decides their order.
    records = spread(300, dt.timedelta(minutes=17))
    for i, record in enumerate(records):
        record["user_id"] = f"u{i % 2}"
        if i % 10 == 0 and i:
            record["timestamp"] = records[i - 1]["timestamp"]
    put_archive(settings, records, per_file=40)
    return ArchiveSearch(ArchiveStore(settings)), records


def test_pages_by_offset_and_by_cursor_give_every_match_once_newest_first(
    archived: tuple[ArchiveSearch, list[dict[str, Any]]],
) -> None:
    searcher, records = archived
    expected = newest_first([r for r in records if r["user_id"] == "u1"])
    wanted = RecordFilter(exact={"user_id": "u1"})
    pages = [searcher.page(wanted, offset=offset, size=33) for offset in range(0, 150, 33)]
    assert {page.total for page in pages} == {150}
    assert [r for page in pages for r in page.records] == expected

    walked: list[dict[str, Any]] = []
    after = None
    while True:
        page = searcher.page(wanted, offset=0, size=40, after=after)
        assert page.total == 150
        if not page.records:
            break
        walked.extend(page.records)
        last = page.records[-1]
        after = After(dt.datetime.fromisoformat(last["timestamp"]), last["log_id"])
    assert walked == expected


def test_time_bounds_cut_inside_a_day_and_the_end_may_be_exclusive(
    archived: tuple[ArchiveSearch, list[dict[str, Any]]],
) -> None:
    searcher, records = archived
    start = dt.datetime(2025, 3, 31, 5, 0, tzinfo=UTC)
    end = dt.datetime(2025, 4, 1, 0, 0, tzinfo=UTC)
    inside = [r for r in records
              if start <= dt.datetime.fromisoformat(r["timestamp"]) < end]
    page = searcher.page(RecordFilter(start=TimeBound(start), end=TimeBound(end, inclusive=False)),
                         offset=0, size=500)
    assert page.records == newest_first(inside)
    assert page.total == len(inside) > 0


def test_one_record_by_its_log_id_holds_every_field_as_logged(
    archived: tuple[ArchiveSearch, list[dict[str, Any]]],
) -> None:
    searcher, records = archived
    for record in (records[0], records[137], records[-1]):
        assert searcher.find(record["log_id"]) == record
    assert searcher.find("0190a6e0-0000-7000-8000-000000000000") is None
    assert searcher.find("not-a-uuid") is None


def test_each_day_reads_every_match_oldest_first_one_day_at_a_time(
    archived: tuple[ArchiveSearch, list[dict[str, Any]]],
) -> None:
    searcher, records = archived
    files = searcher.store.files(dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    days = list(searcher.each_day(RecordFilter(exact={"user_id": "u0"}), files, columns=["log_id"]))
    ids = [log_id for _, table in days for log_id in table.column("log_id").to_pylist()]
    assert ids == [r["log_id"] for r in reversed(newest_first(
        [r for r in records if r["user_id"] == "u0"]))]
    assert [day for day, _ in days] == sorted({dt.date.fromisoformat(r["timestamp"][:10])
                                               for r in records})
    assert {table.column_names[0] for _, table in days} == {"log_id"}


def test_free_text_matches_what_the_index_matches(settings: Settings) -> None:
    """The same records in the archive and in a real index: every term finds the same ones."""
    texts = {
        "words": {"change_message": "Changed the Invoice status to paid"},
        "prefix": {"object_repr": "Invoice INV-2025-0042 for Acme"},
        "username": {"username": "Zoë.Admin@example.com"},
        "keyword": {"object_type": "Inv"},
        "cjk": {"change_message": "请求已批准"},
        "none": {"change_message": "Nothing here", "object_type": "Order"},
    }
    records = []
    for i, (name, given) in enumerate(texts.items()):
        fields = {"object_type": "Customer", "change_message": None, **given}
        records.append(record_at(DAY0 + dt.timedelta(minutes=i), object_id=name, **fields))
    put_archive(settings, records)
    searcher = ArchiveSearch(ArchiveStore(settings))
    client = opensearch_client(settings)
    prefix = settings.opensearch_index_prefix
    install_template(client, prefix)
    actions = [{"_index": index_for(prefix, r["timestamp"]), "_id": r["log_id"], "_source": r}
               for r in records]
    assert helpers.bulk(client, actions, refresh="wait_for")[0] == len(records)

    def found(term: str) -> set[str]:
        page = searcher.page(RecordFilter(search_term=term), offset=0, size=50)
        in_archive = {r["object_id"] for r in page.records}
        hits = client.search(index=index_pattern(prefix), body={
            "query": free_text_query(term), "size": 50, "_source": ["object_id"]})
        in_index = {hit["_source"]["object_id"] for hit in hits["hits"]["hits"]}
        assert in_archive == in_index, f"{term!r}: archive {in_archive}, index {in_index}"
        return in_archive

    assert found("invoice STATUS") == {"words"}
    assert found("invoice status pa") == {"words"}  # the last word may be a word's start
    assert found("status invoice") == {"words"}  # every word, in any order
    assert found("inv") == {"prefix", "words"}  # a prefix (a keyword is equal or not: case counts)
    assert found("Inv") == {"prefix", "words", "keyword"}
    assert found("voice") == set()  # inside a word is not a word
    assert found("zoë") == {"username"}  # case folded beyond ASCII
    assert found("批准") == {"cjk"}  # each Han character is a word
    assert found("statu paid") == set()  # only the last word is a prefix
    assert found("zoë.admin") == {"username"}  # one word
    assert found("example.com") == set(texts)  # every other username is alice@example.com
    assert found("admin") == found("example nothing") == set()  # inside a dotted word
    # A last word that is only a word's start counts when every word is in that one field.
    assert found("nothing her") == {"none"}
    assert found("nothing example") == set()
    assert found("invoice: status") == {"words"}


def test_words_are_cut_as_the_index_cuts_them() -> None:
    assert words("Invoice INV-2025/0042") == ["Invoice", "INV", "2025", "0042"]
    assert words("ab你好 cd") == ["ab", "你", "好", "cd"]
    assert words("  --  ") == []
    assert words("don't stop: zoë.admin@example.com.") == [
        "don't", "stop", "zoë.admin", "example.com"]


def test_ip_address_and_network_filters(settings: Settings) -> None:
    addresses = ["10.1.2.3", "10.1.200.9", "10.2.0.1", "2001:db8::5", None]
    records = [record_at(DAY0 + dt.timedelta(minutes=i), object_id=str(i), ip_address=a)
               for i, a in enumerate(addresses)]
    put_archive(settings, records)
    searcher = ArchiveSearch(ArchiveStore(settings))

    def found(ip: str) -> set[str]:
        return {r["object_id"] for r in searcher.page(RecordFilter(ip_address=ip), offset=0,
                                                       size=10).records}

    assert found("10.1.0.0/16") == {"0", "1"}
    assert found("10.1.2.3") == {"0"}
    assert found("2001:db8::/32") == {"3"}
    assert searcher.page(RecordFilter(ip_address="10.0.0.0/8"), offset=0, size=1).total == 3


def test_ip_filters_match_what_the_index_matches(settings: Settings) -> None:
    """The same records in the archive and in a real index, some holding an IPv4 address in
    IPv4-mapped form (as capture keeps one given so): every address or network, as the API
    parses it, finds the same records in both, and the index treats both forms as one."""
    addresses = {
        "v4": "1.2.3.4", "mapped": "::ffff:1.2.3.5", "mapped-same": "::ffff:1.2.3.4",
        "other-v4": "1.2.4.1", "loopback6": "::1", "v6": "2001:db8::1", "none": None,
    }
    records = [record_at(DAY0 + dt.timedelta(minutes=i), object_id=name, ip_address=address)
               for i, (name, address) in enumerate(addresses.items())]
    assert records[1]["ip_address"] != "1.2.3.5"  # kept in its IPv6 form
    put_archive(settings, records)
    searcher = ArchiveSearch(ArchiveStore(settings))
    client = opensearch_client(settings)
    prefix = settings.opensearch_index_prefix
    install_template(client, prefix)
    actions = [{"_index": index_for(prefix, r["timestamp"]), "_id": r["log_id"], "_source": r}
               for r in records]
    assert helpers.bulk(client, actions, refresh="wait_for")[0] == len(records)

    def found(value: str) -> set[str]:
        wanted = parse_filter({"ip_address": value}, stores_no_session_keys)
        page = searcher.page(wanted, offset=0, size=50)
        in_archive = {r["object_id"] for r in page.records}
        hits = client.search(index=index_pattern(prefix), body={
            "query": {"bool": {"filter": filter_clauses(wanted)}}, "size": 50,
            "_source": ["object_id"]})
        in_index = {hit["_source"]["object_id"] for hit in hits["hits"]["hits"]}
        assert in_archive == in_index, f"{value!r}: archive {in_archive}, index {in_index}"
        assert page.total == len(in_archive)
        return in_archive

    v4s = {"v4", "mapped", "mapped-same", "other-v4"}
    assert found("1.2.3.4") == found("::ffff:1.2.3.4") == {"v4", "mapped-same"}
    assert found("1.2.3.5") == found("::ffff:102:305") == {"mapped"}
    assert found("1.2.3.0/24") == found("::ffff:1.2.3.0/120") == {"v4", "mapped", "mapped-same"}
    assert found("::ffff:1.2.3.4/128") == {"v4", "mapped-same"}
    assert found("0.0.0.0/0") == found("::ffff:0:0/96") == v4s
    assert found("::/0") == {*v4s, "loopback6", "v6"}
    assert found("::/80") == {*v4s, "loopback6"}  # holds ::ffff:0:0/96
    assert found("::/96") == {"loopback6"}  # does not
    assert found("2001:db8::/32") == found("2001:db8::1") == {"v6"}


def test_an_empty_or_missing_range_answers_nothing(settings: Settings) -> None:
    searcher = ArchiveSearch(ArchiveStore(settings))
    assert searcher.page(RecordFilter(), offset=0, size=10) == archive_search.Page(0, [])
    put_archive(settings, spread(3, dt.timedelta(hours=1)))
    later = TimeBound(dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert searcher.page(RecordFilter(start=later), offset=0, size=10).total == 0
    assert searcher.page(RecordFilter(), offset=0, size=10).total == 3


class _CountingFileSystem:
    """The store's S3 filesystem, counting the files opened (each open is a request)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.opened: list[str] = []

    def open_input_file(self, path: str) -> Any:
        self.opened.append(path)
        return self.real.open_input_file(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_files_are_read_once_while_kept_and_the_cache_is_bounded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_archive(settings, spread(120, dt.timedelta(minutes=30)), per_file=10)
    store = ArchiveStore(settings)
    files = store.files(DAY0.date(), (DAY0 + dt.timedelta(days=3)).date())
    assert len(files) > 10  # split by day too
    counting = _CountingFileSystem(store.fs)
    monkeypatch.setattr(store, "fs", counting)
    searcher = ArchiveSearch(store)
    assert searcher.page(RecordFilter(), offset=0, size=10).total == 120
    assert sorted(counting.opened) == sorted(store.path(f.key) for f in files)
    # Another page, another filter: the same files, from memory.
    assert searcher.page(RecordFilter(exact={"object_id": "obj_7"}), offset=0, size=10).total == 1
    assert searcher.page(RecordFilter(), offset=110, size=10).total == 120
    assert len(counting.opened) == len(files)

    # One file may take an eighth of the cache: room for eight or so of the files.
    limit = 8 * max(f.size for f in files)
    small = ArchiveStore(settings, cache_bytes=limit)
    counting = _CountingFileSystem(small.fs)
    monkeypatch.setattr(small, "fs", counting)
    for _ in range(2):
        assert ArchiveSearch(small).page(RecordFilter(), offset=0, size=10).total == 120
        assert 0 < small.bytes_kept() <= limit
    assert len(counting.opened) > len(files)  # not all could be kept: some were read again


def test_footers_are_kept_up_to_the_bound(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = put_archive(settings, spread(120, dt.timedelta(minutes=30)), per_file=10)
    reads: collections.Counter[str] = collections.Counter()
    read_footer = archive_store._read_footer

    def counted(path: str, fs: Any, size: int | None) -> Any:
        reads[path.removeprefix(f"{settings.s3_bucket}/")] += 1
        return read_footer(path, fs, size)

    monkeypatch.setattr(archive_store, "_read_footer", counted)
    store = ArchiveStore(settings)
    files = store.files(DAY0.date(), (DAY0 + dt.timedelta(days=3)).date())
    # The footers a reader of single files asks for (verify, reindex), each read once ...
    assert sum(store.footer(f).num_rows for f in files) == 120
    assert reads == dict.fromkeys(keys, 1)
    # ... and not again while kept.
    assert sum(store.footer(f).num_rows for f in files) == 120
    assert reads == dict.fromkeys(keys, 1)

    # Bounded: a store keeping 5 footers keeps 5, and reads the others again when asked.
    monkeypatch.setattr(archive_store, "FOOTERS_KEPT", 5)
    reads.clear()
    small = ArchiveStore(settings)
    for _ in range(2):
        assert sum(small.footer(f).num_rows for f in files) == 120
        assert small.footers_kept() == 5
    assert sum(reads.values()) > len(keys)


def test_a_stray_folder_under_the_prefix_is_passed_over(settings: Settings) -> None:
    put_archive(settings, spread(3, dt.timedelta(hours=1)))
    make_s3_client(settings).put_object(Bucket=str(settings.s3_bucket),
                                        Key=f"{settings.s3_prefix}year=2020/month=13/x", Body=b"")
    assert ArchiveSearch(ArchiveStore(settings)).page(RecordFilter(), offset=0, size=10).total == 3


def test_a_search_stops_at_its_deadline(settings: Settings) -> None:
    put_archive(settings, spread(30, dt.timedelta(hours=1)), per_file=5)
    searcher = ArchiveSearch(ArchiveStore(settings))
    with pytest.raises(SearchTooLongError, match="deadline over 7 files"):
        searcher.page(RecordFilter(), offset=0, size=10, seconds=0.0)
    assert searcher.page(RecordFilter(), offset=0, size=10, seconds=60.0).total == 30


def test_a_cursor_page_counts_again_when_the_range_gains_a_file(settings: Settings) -> None:
    early = spread(20, dt.timedelta(hours=1))
    put_archive(settings, early, per_file=5)
    searcher = ArchiveSearch(ArchiveStore(settings))
    first = searcher.page(RecordFilter(), offset=0, size=5)
    last = first.records[-1]
    after = After(dt.datetime.fromisoformat(last["timestamp"]), last["log_id"])
    assert searcher.page(RecordFilter(), offset=0, size=5, after=after).total == 20
    late = [record_at(DAY0 + dt.timedelta(minutes=7 + 60 * i), object_id=f"late_{i}")
            for i in range(3)]
    put_archive(settings, late, first_offset=1000)
    second = searcher.page(RecordFilter(), offset=0, size=5, after=after)
    assert second.total == 23
    everything = newest_first([*early, *late])
    below = [r["object_id"] for r in everything if (r["timestamp"], r["log_id"])
             < (last["timestamp"], last["log_id"])]
    assert [r["object_id"] for r in second.records] == below[:5]


def test_the_deadline_holds_when_nothing_matches_and_while_a_read_waits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_archive(settings, spread(30, dt.timedelta(hours=1)), per_file=5)
    store = ArchiveStore(settings)
    searcher = ArchiveSearch(store)
    nobody = RecordFilter(exact={"user_id": "nobody"})
    with pytest.raises(SearchTooLongError):  # no file gives a batch to check it on
        searcher.page(nobody, offset=0, size=10, seconds=0.0)
    read = ArchiveStore._bytes_of
    unblock = threading.Event()

    def stalled(self: ArchiveStore, file: Any) -> Any:  # S3 hanging on every read
        unblock.wait(30)
        return read(self, file)

    monkeypatch.setattr(ArchiveStore, "_bytes_of", stalled)
    started = time.monotonic()
    with pytest.raises(SearchTooLongError):
        ArchiveSearch(ArchiveStore(settings)).page(nobody, offset=0, size=10, seconds=0.5)
    waited = time.monotonic() - started
    unblock.set()
    assert waited < 20  # the reads were still hanging: only the deadline ended the wait


def test_cursor_totals_are_kept_apart_by_every_filter_value(settings: Settings) -> None:
    records = spread(30, dt.timedelta(hours=1))
    for i, record in enumerate(records):
        record["session_key"] = "hmac-sha256:" + ("a" if i % 3 else "b") * 64
    put_archive(settings, records, per_file=5)
    searcher = ArchiveSearch(ArchiveStore(settings))
    # Two sessions: their filters print alike (a session key is never shown), their totals
    # must not be taken for each other's. Both first pages, then both cursor pages.
    wanted = {key: RecordFilter(exact={"session_key": "hmac-sha256:" + key * 64})
              for key in ("a", "b")}
    assert repr(wanted["a"]) == repr(wanted["b"])
    cursors = {}
    for key, search in wanted.items():
        last = searcher.page(search, offset=0, size=2).records[-1]
        cursors[key] = After(dt.datetime.fromisoformat(last["timestamp"]), last["log_id"])
    totals = {key: searcher.page(search, offset=0, size=2, after=cursors[key]).total
              for key, search in wanted.items()}
    assert totals == {"a": 20, "b": 10}


def test_a_filter_that_does_not_fit_the_columns_raises_instead_of_blaming_files(
    settings: Settings,
) -> None:
    put_archive(settings, spread(10, dt.timedelta(hours=1)), per_file=5)
    store = ArchiveStore(settings)
    files = store.files(DAY0.date(), (DAY0 + dt.timedelta(days=1)).date())
    skipped: list[Any] = []
    with pytest.raises(pa.ArrowNotImplementedError):
        list(store.scan(files, ["log_id"], ds.field("schema_version") == "x", skipped))
    assert skipped == []
