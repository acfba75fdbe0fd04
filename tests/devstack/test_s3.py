"""The local S3 server is real: pyarrow writes Parquet to the bucket over HTTP and reads it back."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from audit_logging.settings import Settings
from tests._stack import s3_client

pytestmark = pytest.mark.services


def test_parquet_written_with_pyarrow_reads_back(settings: Settings) -> None:
    secret = settings.aws_secret_access_key
    endpoint = settings.require("aws_endpoint_url_s3")
    s3fs = fs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[1],
        scheme=endpoint.split("://", 1)[0],
        access_key=settings.aws_access_key_id,
        secret_key=secret.get() if secret else None,
        region=settings.aws_region_name,
    )
    table = pa.table(
        {
            "log_id": [f"id-{i}" for i in range(100)],
            "action": ["CREATE"] * 100,
            "n": list(range(100)),
        }
    )
    path = f"{settings.s3_bucket}/{settings.s3_prefix}smoke.parquet"
    pq.write_table(table, path, filesystem=s3fs, compression="zstd")

    assert pq.read_table(path, filesystem=s3fs).equals(table)
    listed = s3_client(settings).list_objects_v2(
        Bucket=settings.s3_bucket, Prefix=settings.s3_prefix
    )
    assert [item["Key"] for item in listed["Contents"]] == [f"{settings.s3_prefix}smoke.parquet"]
