"""Helpers for the archive tests: records of a chosen time, written to the real S3 as the
consumer writes them (one file per batch and day, keyed by stream offsets), and the archive's
commands run as a user runs them (a process started in this work tree)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit_logging._uuid7 import uuid7_at
from audit_logging.archive import layout, parquet
from audit_logging.consumer.s3 import make_s3_client
from audit_logging.record import build_record, format_timestamp
from audit_logging.search_index import first_retained_day
from audit_logging.settings import Settings

STREAM = "audit_logs_stream"
REPO = Path(__file__).resolve().parents[2]


def record_at(moment: dt.datetime, **fields: Any) -> dict[str, Any]:
    given = {
        "action": "UPDATE", "object_type": "Customer", "object_id": "cus_1",
        "user_id": "u1", "username": "alice@example.com", "change_message": "Changed status",
        "ip_address": "10.0.0.1", "source": "archive-tests", **fields,
    }
    given.setdefault("log_id", uuid7_at(moment))
    given.setdefault("timestamp", format_timestamp(moment))
    return build_record(given, require_ids=True)


def before_the_index(settings: Settings) -> dt.datetime:
    """A moment the index no longer holds (before its oldest retained month): a search
    reaching it reads the archive."""
    first = first_retained_day(settings.retention_months, dt.datetime.now(dt.UTC).date())
    return dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC) - dt.timedelta(days=20)


def twins_at(moment: dt.datetime, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of each of ``records`` (every field alike) logged at ``moment`` (a microsecond
    apart, in order), with a log_id of its own."""
    made = []
    for i, record in enumerate(records):
        at = moment + dt.timedelta(microseconds=i)
        fields = {k: v for k, v in record.items()
                  if v is not None and k not in ("log_id", "timestamp", "truncated")}
        made.append(build_record({**fields, "log_id": uuid7_at(at),
                                  "timestamp": format_timestamp(at)}, require_ids=True))
    return made


def put_archive(
    settings: Settings, records: Sequence[dict[str, Any]], *, per_file: int = 50,
    stream: str = STREAM, first_offset: int = 0,
) -> list[str]:
    """Write ``records`` to the archive in the consumer's layout; returns the keys."""
    client = make_s3_client(settings)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_day.setdefault(layout.day_of(record), []).append(record)
    keys = []
    offset = first_offset
    for day, day_records in sorted(by_day.items()):
        for start in range(0, len(day_records), per_file):
            chunk = day_records[start:start + per_file]
            key = layout.archive_key(settings.s3_prefix, stream, day, offset,
                                     offset + len(chunk) - 1)
            offset += len(chunk)
            body = parquet.parquet_bytes(parquet.records_table(chunk))
            client.put_object(Bucket=str(settings.s3_bucket), Key=key, Body=body)
            keys.append(key)
    return keys


def newest_first(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["timestamp"], r["log_id"]), reverse=True)


def command_env(settings: Settings) -> dict[str, str]:
    """The environment that points a command at this test's archive and indices."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUDIT_LOG_", "AWS_", "OPENSEARCH_", "RABBITMQ_"))}
    secret = settings.aws_secret_access_key
    env.update({
        "AUDIT_LOG_AWS_S3_BUCKET": str(settings.s3_bucket),
        "AUDIT_LOG_S3_PREFIX": settings.s3_prefix,
        "AWS_ENDPOINT_URL_S3": str(settings.aws_endpoint_url_s3),
        "AWS_ACCESS_KEY_ID": str(settings.aws_access_key_id),
        "AWS_SECRET_ACCESS_KEY": secret.get() if secret else "",
        "AWS_REGION_NAME": settings.aws_region_name or "us-east-1",
        "OPENSEARCH_HOST": settings.opensearch_host,
        "OPENSEARCH_PORT": str(settings.opensearch_port),
        "OPENSEARCH_INDEX_PREFIX": settings.opensearch_index_prefix,
        "AUDIT_LOG_RETENTION_MONTHS": str(settings.retention_months),
        # verify --integrity reads the digest references stored in RabbitMQ.
        "RABBITMQ_STREAM_HOST": settings.rabbitmq_stream_host,
        "RABBITMQ_STREAM_PORT": str(settings.rabbitmq_stream_port),
        "RABBITMQ_STREAM_USER": settings.rabbitmq_stream_user,
        "RABBITMQ_STREAM_PASSWORD": settings.rabbitmq_stream_password.get(),
        "RABBITMQ_STREAM_VHOST": settings.rabbitmq_stream_vhost,
        "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
        "AUDIT_LOG_STREAM_PARTITIONS": str(settings.stream_partitions),
    })
    return env


def archive_command(
    settings: Settings, *args: str, env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m audit_logging.archive ARGS`` run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "audit_logging.archive", *args],
        env=env if env is not None else command_env(settings), cwd=REPO,
        capture_output=True, text=True, timeout=600, check=False,
    )


def start_archive_command(
    settings: Settings, *args: str, stderr: Path | None = None,
) -> subprocess.Popen[str]:
    """The command started in the background; what it says on stderr goes to ``stderr``."""
    with open(stderr or os.devnull, "w", encoding="utf-8") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "audit_logging.archive", *args], env=command_env(settings),
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors, text=True,
        )
