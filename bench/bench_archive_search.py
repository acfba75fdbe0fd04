"""Archive benchmarks: searching one month of 1,000,000 archived records in S3 (the local
S3 server), as the API does for a range past the index's retention, and reading one record
back by its log_id.

* search p50 and p99, filtered by ``user_id`` and free text, page of 20 with the total,
  against DuckDB running the same filter, order and limit over the same pyarrow dataset
  (the second engine the README shows), interleaved; goal p50 <= 1 s. The searches share
  one store, as the API's do, so after the first the files come from memory;
* the same search with nothing kept (a new store each time): p50;
* detail (one record by log_id) p99, goal <= 300 ms.

The records are written once under their own prefix and reused by later runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from audit_logging._uuid7 import uuid7_at
from audit_logging.archive import layout, parquet
from audit_logging.archive.search import ArchiveSearch
from audit_logging.archive.store import ArchiveStore, s3_filesystem
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record_filter import RecordFilter, TimeBound
from bench._results import Result, median, percentile

AREA: Final = "archive_search"
PREFIX: Final = "bench-archive-1m-sorted/"  # renamed when the writer's layout changes
RECORDS: Final = 1_000_000
PER_FILE: Final = 5000  # the consumer's benchmark batch size
MONTH: Final = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DAYS: Final = 31
USERS: Final = 2000
WORDS: Final = ("invoice", "refund", "address", "password", "export", "discount", "contract")
SEARCHES: Final = 30
COLD_SEARCHES: Final = 5  # each in a new store: every file read from S3
DETAILS: Final = 100
P50_GOAL_S: Final = 1.0
DETAIL_P99_GOAL_MS: Final = 300.0
_DONE_KEY: Final = PREFIX + "_bench-complete"


def _day_table(day: int, count: int, rng: random.Random) -> pa.Table:
    start = MONTH + dt.timedelta(days=day)
    micros = sorted(rng.randrange(86_400_000_000) for _ in range(count))
    stamps = [start + dt.timedelta(microseconds=m) for m in micros]
    ids = [uuid7_at(s, rng.getrandbits) for s in stamps]
    users = [f"user_{rng.randrange(USERS)}" for _ in range(count)]
    words = [rng.choice(WORDS) for _ in range(count)]
    columns: dict[str, Any] = {
        "log_id": ids,
        "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        "user_id": users,
        "username": [f"{u}@example.com" for u in users],
        "action": [rng.choice(("CREATE", "UPDATE", "DELETE", "VIEW")) for _ in range(count)],
        "object_type": [rng.choice(("Customer", "Invoice", "Order")) for _ in range(count)],
        "object_id": [f"obj_{rng.randrange(10**6)}" for _ in range(count)],
        "object_repr": [f"Record {i} about {w}" for i, w in enumerate(words)],
        "change_message": [f"Changed the {w} of record {i}" for i, w in enumerate(words)],
        "changes": ['{"status":["draft","sent"]}'] * count,
        "ip_address": [f"10.{rng.randrange(256)}.{rng.randrange(256)}.1" for _ in range(count)],
        "user_agent": ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"] * count,
        "session_key": [None] * count,
        "request_id": [f"req-{day}-{i}" for i in range(count)],
        "source": ["bench"] * count,
        "extra": [None] * count,
        "schema_version": [1] * count,
        "truncated": [[] for _ in range(count)],
    }
    arrays = [pa.array(columns[f.name], f.type) for f in parquet.ARROW_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=parquet.ARROW_SCHEMA)


def _load(settings: Any) -> float:
    client = make_s3_client(settings)
    bucket = str(settings.s3_bucket)
    try:
        client.head_object(Bucket=bucket, Key=_DONE_KEY)
        return 0.0
    except client.exceptions.ClientError:
        pass
    started = time.perf_counter()
    rng = random.Random(7)
    offset = 0
    for day in range(DAYS):
        count = RECORDS // DAYS + (1 if day < RECORDS % DAYS else 0)
        table = _day_table(day, count, rng)
        name = (MONTH + dt.timedelta(days=day)).date().isoformat()
        for start in range(0, count, PER_FILE):
            part = table.slice(start, PER_FILE)
            key = layout.archive_key(PREFIX, "bench_stream", name, offset,
                                     offset + part.num_rows - 1)
            offset += part.num_rows
            client.put_object(Bucket=bucket, Key=key, Body=parquet.parquet_bytes(part))
    client.put_object(Bucket=bucket, Key=_DONE_KEY, Body=b"")
    return time.perf_counter() - started


def _duckdb_page(query: duckdb.DuckDBPyConnection, user: str, word: str) -> int:
    found = query.execute(
        "SELECT count(*) OVER () AS total, log_id FROM archive"
        " WHERE user_id = ? AND (regexp_matches(change_message, ?, 'i')"
        " OR regexp_matches(object_repr, ?, 'i'))"
        " ORDER BY timestamp DESC, log_id DESC LIMIT 20",
        [user, f"\\b{word}", f"\\b{word}"],
    ).fetchall()
    return int(found[0][0]) if found else 0


def run(settings: Any) -> list[Result]:
    settings = dataclasses.replace(settings, s3_prefix=PREFIX)
    seconds = _load(settings)
    note = "reused the archived records" if not seconds else (
        f"archived in {seconds:.0f} s ({RECORDS / seconds:,.0f} records/s)")
    searcher = ArchiveSearch(ArchiveStore(settings))
    month = RecordFilter(start=TimeBound(MONTH),
                         end=TimeBound(MONTH + dt.timedelta(days=DAYS), inclusive=False))
    files = searcher.store.files(MONTH.date(), (MONTH + dt.timedelta(days=DAYS - 1)).date())
    dataset = ds.dataset([searcher.store.path(f.key) for f in files], format="parquet",
                         filesystem=s3_filesystem(settings), schema=parquet.ARROW_SCHEMA)
    query = duckdb.connect()
    query.register("archive", dataset)
    rng = random.Random(11)
    ours: list[float] = []
    base: list[float] = []
    for _ in range(SEARCHES):
        user, word = f"user_{rng.randrange(USERS)}", rng.choice(WORDS)
        wanted = dataclasses.replace(month, exact={"user_id": user}, search_term=word)
        started = time.perf_counter()
        page = searcher.page(wanted, offset=0, size=20)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        total = _duckdb_page(query, user, word)
        base.append(time.perf_counter() - started)
        assert page.total == total, (user, word, page.total, total)
    cold: list[float] = []
    cold_base: list[float] = []
    for _ in range(COLD_SEARCHES):
        user, word = f"user_{rng.randrange(USERS)}", rng.choice(WORDS)
        wanted = dataclasses.replace(month, exact={"user_id": user}, search_term=word)
        started = time.perf_counter()
        total = ArchiveSearch(ArchiveStore(settings)).page(wanted, offset=0, size=20).total
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert total == _duckdb_page(query, user, word)
        cold_base.append(time.perf_counter() - started)
    ids = [str(i) for i in
           pc.unique(dataset.to_table(columns=["log_id"]).column("log_id")).to_pylist()]
    details: list[float] = []
    fresh = ArchiveSearch(ArchiveStore(settings))  # nothing kept from the searches above
    for log_id in rng.sample(ids, DETAILS):
        started = time.perf_counter()
        assert fresh.find(log_id) is not None
        details.append((time.perf_counter() - started) * 1000)
    p50, p99 = median(ours), percentile(ours, 99)
    b50, b99 = median(base), percentile(base, 99)
    d99 = percentile(details, 99)
    setup = (f"{RECORDS:,} records over {DAYS} days in {len(files)} files of {PER_FILE}; "
             f"{SEARCHES} searches, user_id + free text, page of 20 with the total; {note}")
    return [
        Result(AREA, "archive search p50, one month of 1M records (user_id + free text)",
               p50, b50, "s", f"<= {P50_GOAL_S:g} s", p50 <= P50_GOAL_S,
               f"baseline: DuckDB, the same filter, order and limit over the same pyarrow "
               f"dataset, interleaved; {setup}"),
        Result(AREA, "archive search p99 (same searches)", p99, b99, "s", "-", None,
               "2 cores shared with the local S3 server; the first search reads every file "
               "from S3, the others find them kept in memory"),
        Result(AREA, "archive search p50, nothing kept (a new store each search)",
               median(cold), median(cold_base), "s", "-", None,
               f"{COLD_SEARCHES} searches; every file read from the local S3 server, which "
               f"answers one request at a time"),
        Result(AREA, "archive detail p99 (one record by log_id)", d99, None, "ms",
               f"<= {DETAIL_P99_GOAL_MS:g} ms", d99 <= DETAIL_P99_GOAL_MS,
               f"{DETAILS} random log_ids, a store of its own; the UUIDv7's day's files only; p50 "
               f"{median(details):.0f} ms"),
    ]
