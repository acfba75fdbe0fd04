"""The archive's Parquet files: records to an Arrow table and bytes, and back.

Columns are :data:`audit_logging.schema.FIELDS` in order; ``changes`` and ``extra`` are JSON
strings, ``truncated`` a list of strings, ``timestamp`` a UTC microsecond timestamp.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audit_logging.record import format_timestamp
from audit_logging.schema import FIELDS

PARQUET_CONTENT_TYPE: Final = "application/vnd.apache.parquet"
_JSON_FIELDS: Final = frozenset(f.name for f in FIELDS if f.kind == "object")
# One Arrow type per kind of field (audit_logging.schema).
_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "uuid": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "string": pa.string(),
    "object": pa.string(),  # compact JSON
    "ip": pa.string(),
    "integer": pa.int16(),
    "string_list": pa.list_(pa.string()),
}

_STRING: Final = pa.string()
ARROW_SCHEMA: Final = pa.schema(
    [pa.field(f.name, _ARROW_TYPES[f.kind], nullable=not f.never_null) for f in FIELDS]
)
# Columns with few distinct values, where a dictionary page pays off; ids and free text
# would only overflow it.
_DICTIONARY_COLUMNS: Final = [
    "user_id",
    "username",
    "action",
    "object_type",
    "ip_address",
    "user_agent",
    "session_key",
    "source",
    "schema_version",
    "truncated",
]

# Rows are in this order in a file; the consumer's batches arrive in stream order, which says
# nothing of who acted, and investigations mostly start from a user.
SORTED_BY: Final = ("user_id", "timestamp", "log_id")
ROWS_PER_GROUP: Final = 512
_SORTING: Final = pq.SortingColumn.from_ordering(
    ARROW_SCHEMA, [(name, "ascending") for name in SORTED_BY]
)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def records_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    columns: list[pa.Array[Any]] = []
    for field in ARROW_SCHEMA:
        name = field.name
        values = [record.get(name) for record in records]
        if name == "timestamp":
            # Checked records carry "YYYY-MM-DDTHH:MM:SS.ffffffZ", which Arrow parses natively.
            columns.append(pc.cast(pa.array(values, _STRING), field.type))
        elif name in _JSON_FIELDS:
            columns.append(pa.array([_json_text(v) for v in values], _STRING))
        else:
            columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def records_table_checked(
    records: Sequence[Mapping[str, Any]], describe: Callable[[BaseException], str]
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The table of the records whose row can be built, and (position, reason) of the others,
    the reason being ``describe`` of what went wrong.

    One row at a time only when the whole table fails: a record no Parquet row can hold is
    that record's dead letter, not a batch that can never be archived.
    """
    try:
        table = records_table(records)
    except Exception:  # noqa: BLE001 - find the record at fault below
        table = None
    if table is not None:
        return table, []
    good: list[Mapping[str, Any]] = []
    bad: list[tuple[int, str]] = []
    for position, record in enumerate(records):
        try:
            records_table([record])
        except Exception as exc:  # noqa: BLE001 - that record's fault
            bad.append((position, describe(exc)))
        else:
            good.append(record)
    return records_table(good), bad


def parquet_bytes(table: pa.Table, metadata: Mapping[str, str] | None = None) -> bytes:
    """The file of ``table``'s rows, sorted by :data:`SORTED_BY` and cut into row groups of
    :data:`ROWS_PER_GROUP`: each group's statistics then name a narrow range of users, and a
    search for one user decodes the groups that can hold them only (every engine that reads
    Parquet statistics gains, not only this package's)."""
    table = table.sort_by([(name, "ascending") for name in SORTED_BY])
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=9,
        # pyarrow takes a list of columns here; its stubs only know bool.
        use_dictionary=_DICTIONARY_COLUMNS,  # type: ignore[arg-type]
        write_statistics=["log_id", "timestamp", "action", "object_type", "user_id"],
        row_group_size=ROWS_PER_GROUP,
        sorting_columns=_SORTING,
    )
    return sink.getvalue()


def read_log_ids(data: bytes) -> set[str]:
    table = pq.read_table(io.BytesIO(data), columns=["log_id"])
    return {str(value) for value in table.column("log_id").to_pylist()}


def records_from_table(table: pa.Table) -> list[dict[str, Any]]:
    """The records of ``table``'s rows, as the stream carried them and the index keeps them
    (timestamp as RFC 3339 text, ``changes`` and ``extra`` as objects); the table may hold
    any of the columns."""
    rows: list[dict[str, Any]] = table.to_pylist()
    for row in rows:
        moment = row.get("timestamp")
        if moment is not None:
            row["timestamp"] = format_timestamp(moment)
        for name in _JSON_FIELDS:
            text = row.get(name)
            if text is not None:
                row[name] = json.loads(text)
    return rows
