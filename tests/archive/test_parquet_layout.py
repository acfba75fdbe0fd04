"""The archive file's layout: rows sorted by user, in row groups whose statistics let a search
for one user decode only the groups that can hold that user."""

from __future__ import annotations

import datetime as dt
import io

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from audit_logging.archive import parquet
from tests.archive._archive import record_at

START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def test_rows_are_sorted_by_user_then_time_in_row_groups_with_statistics() -> None:
    records = [record_at(START + dt.timedelta(seconds=i), object_id=f"o{i}") for i in range(2000)]
    for i, record in enumerate(records):
        record["user_id"] = None if i % 97 == 0 else f"user_{(i * 7919) % 300}"
    data = parquet.parquet_bytes(parquet.records_table(records))
    file = pq.ParquetFile(io.BytesIO(data))
    assert file.metadata.num_rows == 2000
    assert file.metadata.num_row_groups == -(-2000 // parquet.ROWS_PER_GROUP)
    assert [c.column_index for c in file.metadata.row_group(0).sorting_columns][:1] == [
        parquet.ARROW_SCHEMA.get_field_index("user_id")]
    table = file.read(columns=["user_id", "timestamp", "log_id"])
    expected = table.sort_by([("user_id", "ascending"), ("timestamp", "ascending"),
                              ("log_id", "ascending")])
    assert table.equals(expected)
    assert table.column("user_id").null_count == len(range(0, 2000, 97))
    # One user's rows lie in one or two groups, and the statistics say which.
    fragment = ds.ParquetFileFormat().make_fragment(io.BytesIO(data))
    assert isinstance(fragment, ds.ParquetFileFragment)
    wanted = ds.field("user_id") == "user_42"
    kept = fragment.subset(wanted, schema=parquet.ARROW_SCHEMA)
    assert isinstance(kept, ds.ParquetFileFragment)
    assert 1 <= kept.num_row_groups <= 2 < file.metadata.num_row_groups
    assert kept.to_table(filter=wanted).num_rows == sum(
        1 for r in records if r["user_id"] == "user_42")
