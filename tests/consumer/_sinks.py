"""What the consumer wrote, read back from the real OpenSearch and S3, and the checks that
each record is there exactly once."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
from opensearchpy import helpers

from audit_logging.settings import Settings
from tests._stack import opensearch_client, s3_client
from tests.consumer._helpers import wait_until


def _refreshed(client: Any, pattern: str) -> None:
    # An index the consumer has just created may not have its primary shard started yet:
    # a search then answers 503 "all shards failed". Wait for the shards, then refresh.
    client.cluster.health(index=pattern, params={"wait_for_status": "yellow"})
    client.indices.refresh(index=pattern, params={"allow_no_indices": "true"})


def opensearch_ids(settings: Settings) -> list[str]:
    client = opensearch_client(settings)
    try:
        pattern = f"{settings.opensearch_index_prefix}-*"
        _refreshed(client, pattern)
        return [
            hit["_id"]
            for hit in helpers.scan(
                client,
                index=pattern,
                query={"query": {"match_all": {}}},
                _source=False,
                size=5000,
                params={"allow_no_indices": "true"},
            )
        ]
    finally:
        client.close()


def opensearch_count(settings: Settings) -> int:
    client = opensearch_client(settings)
    try:
        pattern = f"{settings.opensearch_index_prefix}-*"
        _refreshed(client, pattern)
        response = client.count(index=pattern, params={"allow_no_indices": "true"})
        return int(response["count"])
    finally:
        client.close()


def s3_keys(settings: Settings, under: str = "") -> list[str]:
    s3 = s3_client(settings)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.s3_bucket, Prefix=settings.s3_prefix + under
    ):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def archive_keys(settings: Settings) -> list[str]:
    return [key for key in s3_keys(settings) if key.endswith(".parquet")]


def read_object(settings: Settings, key: str) -> bytes:
    body: bytes = s3_client(settings).get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    return body


def archived_rows(settings: Settings) -> Iterator[dict[str, Any]]:
    for key in archive_keys(settings):
        table = pq.read_table(io.BytesIO(read_object(settings, key)))
        yield from table.to_pylist()


def archived_log_ids(settings: Settings) -> list[str]:
    ids: list[str] = []
    for key in archive_keys(settings):
        table = pq.read_table(io.BytesIO(read_object(settings, key)), columns=["log_id"])
        ids.extend(str(value) for value in table.column("log_id").to_pylist())
    return ids


def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    entries = []
    for key in s3_keys(settings, "dead-letter/"):
        for line in read_object(settings, key).splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries


# -- what the sinks must hold ----------------------------------------------------------------


def assert_exactly_once(settings: Settings, expected: set[str]) -> None:
    """OpenSearch and S3 each hold every expected log_id once, and nothing else."""
    for sink, ids in (("OpenSearch", opensearch_ids(settings)), ("S3", archived_log_ids(settings))):
        repeated = [log_id for log_id, n in Counter(ids).items() if n > 1]
        assert not repeated, f"{sink} holds {len(repeated)} log_ids more than once"
        missing = expected - set(ids)
        extra = set(ids) - expected
        assert not missing and not extra, (
            f"{sink}: {len(missing)} records missing, {len(extra)} unexpected"
        )


def assert_counts(settings: Settings, expected: set[str]) -> None:
    """S3 rows = unique log_ids = OpenSearch documents = the records published."""
    rows = archived_log_ids(settings)
    repeated = sum(n - 1 for n in Counter(rows).values() if n > 1)
    assert not repeated, f"S3 holds {len(rows)} rows for {len(set(rows))} log_ids"
    assert set(rows) == expected, f"S3: {len(expected - set(rows))} records missing"
    ids = opensearch_ids(settings)
    assert len(ids) == len(expected) and set(ids) == expected, f"OpenSearch holds {len(ids)}"


def wait_for_all(settings: Settings, expected: set[str], timeout: float) -> None:
    wait_until(
        f"{len(expected)} log_ids in S3",
        lambda: len(set(archived_log_ids(settings))),
        lambda n: n >= len(expected),
        timeout,
    )
