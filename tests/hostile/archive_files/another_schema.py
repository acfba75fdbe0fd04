"""A valid Parquet file of another shape: ``user_id`` a number, ``timestamp`` text. Casting it
to the archive's schema fails; it must not be read as records."""

import io

import pyarrow as pa
import pyarrow.parquet as pq


def damage(good: bytes) -> bytes:
    table = pa.table({"log_id": ["x"], "user_id": pa.array([7], pa.int64()),
                      "timestamp": ["yesterday"]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
