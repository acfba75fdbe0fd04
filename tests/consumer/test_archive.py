"""The Parquet format, the S3 layout, create-only writes (against the real S3 server) and the
ledger that keeps a replay from archiving a record twice."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_logging.archive import layout, parquet
from audit_logging.consumer import dead_letter
from audit_logging.consumer.ledger import ArchiveLedger
from audit_logging.consumer.s3 import S3Store, make_s3_client
from audit_logging.errors import ConfigurationError
from audit_logging.record import FIELDS
from audit_logging.settings import Settings
from tests.consumer._helpers import make_records
from tests.consumer._sinks import read_object, s3_keys


def test_one_column_per_record_field_in_order_with_the_documented_types() -> None:
    schema = parquet.ARROW_SCHEMA
    assert schema.names == list(FIELDS)
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("truncated").type == pa.list_(pa.string())
    assert schema.field("changes").type == schema.field("extra").type == pa.string()
    assert schema.field("schema_version").type == pa.int16()
    assert not schema.field("log_id").nullable and not schema.field("timestamp").nullable


def test_records_round_trip_through_zstd_parquet() -> None:
    records = make_records(3, extra={"nested": {"a": [1, 2.5, None]}, "text": "é✓"})
    records[0]["truncated"] = ["object_repr", "extra"]
    records[1]["changes"] = None
    data = parquet.parquet_bytes(parquet.records_table(records), {"audit_logging.stream": "s"})
    written = pq.ParquetFile(io.BytesIO(data))
    column = written.metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"
    assert written.schema_arrow.metadata[b"audit_logging.stream"] == b"s"
    rows = written.read().to_pylist()
    for row, record in zip(rows, records, strict=True):
        assert row["timestamp"] == dt.datetime.fromisoformat(record["timestamp"])
        assert row["timestamp"].tzinfo is not None
        for name in ("changes", "extra"):
            assert (json.loads(row[name]) if row[name] else None) == record[name]
        same = [n for n in FIELDS if n not in ("timestamp", "changes", "extra")]
        assert {n: row[n] for n in same} == {n: record[n] for n in same}
    assert parquet.read_log_ids(data) == {r["log_id"] for r in records}


def test_keys_follow_the_documented_layout() -> None:
    key = layout.archive_key("audit-logs/", "audit_logs_stream", "2026-02-03", 7, 1234)
    assert key == (
        "audit-logs/year=2026/month=02/day=03/"
        "audit_logs_stream-00000000000000000007-00000000000000001234.parquet"
    )
    assert layout.archive_key_re("audit-logs/", "2026-02-03", "audit_logs_stream").match(key)
    assert not layout.archive_key_re("audit-logs/", "2026-02-03", "audit_logs").match(key)
    assert dead_letter.dead_letter_key("p/", "s", 1, 2) == (
        "p/dead-letter/s-00000000000000000001-00000000000000000002.ndjson"
    )


def test_dead_letters_keep_the_body_its_hash_and_the_reason() -> None:
    small = dead_letter.DeadLetter(5, "decode", "is not JSON", b"\xffnope", 1_700_000_000_000)
    big_body = b"x" * (dead_letter.MAX_KEPT_BODY + 10)
    big = dead_letter.DeadLetter(3, "decode", "too large", big_body, 1_700_000_000_000)
    data = dead_letter.encode("s", [small, big])
    first, second = (json.loads(line) for line in data.splitlines())
    assert (first["offset"], second["offset"]) == (3, 5)  # in offset order
    assert base64.b64decode(second["body_base64"]) == b"\xffnope"
    assert second["body_truncated"] is False and second["reason"] == "is not JSON"
    assert first["body_truncated"] is True and first["body_bytes"] == len(big_body)
    assert len(base64.b64decode(first["body_base64"])) == dead_letter.MAX_KEPT_BODY
    assert first["broker_timestamp"] == "2023-11-14T22:13:20.000000Z"
    assert set(dead_letter.identities(data)) == {
        (3, "decode", big.sha256),
        (5, "decode", small.sha256),
    }


# -- against the S3 server -------------------------------------------------------------------


@pytest.fixture
def store(settings: Settings) -> S3Store:
    return S3Store(
        make_s3_client(settings),
        settings.require("s3_bucket"),
        threading.Event(),
        multipart_threshold=6 * 1024 * 1024,
        part_size=5 * 1024 * 1024,
    )


@pytest.mark.services
def test_writes_are_create_only_single_and_multipart(settings: Settings, store: S3Store) -> None:
    small_key = f"{settings.s3_prefix}small.bin"
    assert store.put_create_only(small_key, b"first", "application/octet-stream") is True
    assert store.put_create_only(small_key, b"second", "application/octet-stream") is False
    assert read_object(settings, small_key) == b"first"

    big_key = f"{settings.s3_prefix}big.bin"
    big = os.urandom(13 * 1024 * 1024)  # three parts
    assert store.put_create_only(big_key, big, "application/octet-stream") is True
    assert store.put_create_only(big_key, os.urandom(len(big)), "application/octet-stream") is False
    assert read_object(settings, big_key) == big
    uploads = store._client.list_multipart_uploads(Bucket=store.bucket, Prefix=settings.s3_prefix)
    assert not uploads.get("Uploads"), "a refused multipart upload was left behind"


@pytest.mark.services
def test_a_missing_bucket_is_a_configuration_error(settings: Settings) -> None:
    store = S3Store(make_s3_client(settings), "no-such-bucket-here", threading.Event())
    with pytest.raises(
        ConfigurationError, match="AUDIT_LOG_AWS_S3_BUCKET: bucket 'no-such-bucket-here'"
    ):
        store.check_bucket()


@pytest.mark.services
def test_the_ledger_knows_what_was_archived_past_the_stored_offset(
    settings: Settings, store: S3Store
) -> None:
    prefix, stream = settings.s3_prefix, settings.rabbitmq_stream_name
    records = make_records(6)
    day = layout.day_of(records[0])
    # An old batch (offsets 0-2, acknowledged) and the crashed one (offsets 3-5, archived
    # but not acknowledged); the crashed batch's file holds offsets 3 and 5 of this day.
    for first, last, chunk in ((0, 2, records[:3]), (3, 5, [records[3], records[5]])):
        key = layout.archive_key(prefix, stream, day, first, last)
        store.put_create_only(key, parquet.parquet_bytes(parquet.records_table(chunk)), "x")
    other_stream = layout.archive_key(prefix, stream + "-2", day, 3, 5)
    store.put_create_only(other_stream, parquet.parquet_bytes(parquet.records_table(records)), "x")

    ledger = ArchiveLedger(store, prefix, stream, stored_offset=2)
    items = [(n, records[n]["log_id"]) for n in range(6)]
    # Offset 4 lies in the file's range but is not in it (another day's record, say).
    crashed = layout.archive_key(prefix, stream, day, 3, 5)
    old = layout.archive_key(prefix, stream, day, 0, 2)
    # Each with the file that holds it (the digests list that file).
    assert ledger.archived(day, items) == {3: crashed, 5: crashed}
    # Same offset, another record (the stream was recreated): not archived.
    assert ledger.archived(day, [(3, records[0]["log_id"])]) == {}
    # Days without files cost one listing and say nothing is there.
    assert ledger.archived("2001-01-01", items) == {}
    # A name without a stored offset sees every file.
    assert ArchiveLedger(store, prefix, stream, None).archived(day, items) == {
        0: old, 1: old, 2: old, 3: crashed, 5: crashed
    }


@pytest.mark.services
def test_the_ledger_knows_dead_letters_past_the_stored_offset(
    settings: Settings, store: S3Store
) -> None:
    prefix, stream = settings.s3_prefix, settings.rabbitmq_stream_name
    written = [
        dead_letter.DeadLetter(4, "decode", "is not JSON", b"junk", 0),
        dead_letter.DeadLetter(6, "index", "refused", b"{}", 0, "id"),
    ]
    key = dead_letter.dead_letter_key(prefix, stream, 4, 6)
    store.put_create_only(key, dead_letter.encode(stream, written), "application/x-ndjson")
    assert s3_keys(settings, "dead-letter/") == [key]

    again = [*written, dead_letter.DeadLetter(5, "decode", "x", b"other", 0)]
    assert ArchiveLedger(store, prefix, stream, 3).dead_lettered(again) == {
        (4, "decode"): key,
        (6, "index"): key,
    }
    assert ArchiveLedger(store, prefix, stream, 6).dead_lettered(again) == {}
    changed = [dataclasses.replace(written[0], body=b"different")]
    assert ArchiveLedger(store, prefix, stream, 3).dead_lettered(changed) == {}
