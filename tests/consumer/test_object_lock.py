"""S3 Object Lock (AUDIT_LOG_OBJECT_LOCK_DAYS): what the consumer archives is written with
retention, and a consumer refuses a bucket without Object Lock.

The local S3 server (moto) keeps the retention of a single PUT (HEAD shows it) but not of a
multipart upload, has no GetObjectRetention, and enforces nothing a real bucket would; so the
tests read the request headers as sent (a botocore ``before-send`` hook on the real client)
and, where moto keeps it, the retention S3 reports back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.stub import Stubber

from audit_logging.archive.signing import new_private_pem
from audit_logging.consumer.groups import marker_key
from audit_logging.consumer.object_lock import ObjectLock, check_configuration
from audit_logging.consumer.s3 import S3Store, make_s3_client
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings
from tests._proxy import TcpProxy
from tests._stack import unique
from tests.consumer._helpers import (
    bodies_of,
    consumer_env,
    create_stream,
    make_records,
    publish,
    wait_until,
)
from tests.consumer._sinks import archived_log_ids, dead_letters, s3_keys
from tests.consumer.conftest import StartConsumer

LOCK = ObjectLock("GOVERNANCE", 3)
NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=dt.UTC)


# -- without S3 ------------------------------------------------------------------------------


def test_the_retention_counts_days_from_the_write_in_utc() -> None:
    args = ObjectLock("COMPLIANCE", 10).write_args(NOW)
    assert args["ObjectLockMode"] == "COMPLIANCE"
    assert args["ObjectLockRetainUntilDate"] == dt.datetime(2026, 3, 14, 5, 6, 7, tzinfo=dt.UTC)
    assert args["ChecksumAlgorithm"] == "CRC32"  # S3 refuses a retention without a checksum


def test_a_bucket_without_object_lock_is_refused_with_the_fix() -> None:
    for answer in (None, {}, {"ObjectLockEnabled": "Disabled"}):
        with pytest.raises(ConfigurationError) as info:
            check_configuration("my-bucket", answer, LOCK)
        message = str(info.value)
        assert message.startswith(
            "Setting AUDIT_LOG_OBJECT_LOCK_DAYS: bucket 'my-bucket' does not have S3 Object "
            "Lock enabled"
        )
        assert "put-object-lock-configuration --bucket my-bucket" in message
        assert "unset AUDIT_LOG_OBJECT_LOCK_DAYS" in message


def test_a_different_default_retention_of_the_bucket_is_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "audit_logging.consumer")
    enabled = {"ObjectLockEnabled": "Enabled"}
    same = {**enabled, "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}}}
    longer = {**enabled, "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 7}}}
    for answer in (enabled, same):
        check_configuration("b", answer, LOCK)
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO"]
    assert "written under S3 Object Lock: GOVERNANCE for 3 days" in caplog.records[0].message
    caplog.clear()
    check_configuration("b", longer, LOCK)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "default Object Lock retention of COMPLIANCE for 7 years" in warnings[0]
    assert "GOVERNANCE for 3 days" in warnings[0]


def test_a_refused_look_at_the_lock_configuration_names_the_permission() -> None:
    """Waiting would not grant a permission (botocore's Stubber: the local S3 server has no
    access control to refuse with)."""
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    with Stubber(client) as stub:
        stub.add_response("head_bucket", {}, {"Bucket": "b"})
        stub.add_client_error(
            "get_object_lock_configuration", "AccessDenied", "Access Denied", 403
        )
        # Were the refusal waited out as an outage, shutdown would end the wait, failing.
        abandon = threading.Event()
        guard = threading.Timer(30, abandon.set)
        guard.start()
        try:
            with pytest.raises(ConfigurationError) as info:
                S3Store(client, "b", abandon, lock=LOCK).check_bucket()
        finally:
            guard.cancel()
    message = str(info.value)
    assert message.startswith("Setting AUDIT_LOG_OBJECT_LOCK_DAYS: S3 refuses to show")
    assert "s3:GetBucketObjectLockConfiguration" in message and "'b'" in message


# -- against the S3 server -------------------------------------------------------------------


def _empty_and_delete(client: Any, bucket: str) -> None:
    """Every version and delete marker, then the bucket (the test's retention is GOVERNANCE,
    which the bypass header lifts)."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            client.delete_object(
                Bucket=bucket,
                Key=item["Key"],
                VersionId=item["VersionId"],
                BypassGovernanceRetention=True,
            )
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def locked_bucket(stack_settings: Settings) -> Iterator[str]:
    """A bucket of this test's own, created with Object Lock enabled; removed afterwards."""
    client = make_s3_client(stack_settings)
    name = unique("test-lock")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    _empty_and_delete(client, name)


Sent = list[tuple[str, dict[str, str], bytes]]


def _text(value: object) -> str:
    """A header value as botocore sends it (bytes, whatever its stubs say)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _record_requests(client: Any) -> Sent:
    """(operation, headers, body) of each request ``client`` sends, as it goes on the wire."""
    sent: Sent = []

    def hook(request: AWSPreparedRequest, event_name: str, **_: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else b""
        headers = {k.lower(): _text(v) for k, v in request.headers.items()}
        sent.append((event_name.rsplit(".", 1)[-1], headers, body))

    client.meta.events.register("before-send.s3", hook)
    return sent


def _locked_store(settings: Settings, bucket: str, lock: ObjectLock | None = LOCK) -> S3Store:
    return S3Store(
        make_s3_client(settings),
        bucket,
        threading.Event(),
        multipart_threshold=6 * 1024 * 1024,
        part_size=5 * 1024 * 1024,
        lock=lock,
    )


def _retain_until(headers: dict[str, str]) -> dt.datetime:
    return dt.datetime.fromisoformat(headers["x-amz-object-lock-retain-until-date"])


def _within(until: Any, before: dt.datetime, after: dt.datetime, days: int) -> bool:
    """``until`` is ``days`` after a moment between ``before`` and ``after`` (to the second)."""
    start = before.replace(microsecond=0) + dt.timedelta(days=days)
    return bool(start <= until <= after + dt.timedelta(days=days))


@pytest.fixture
def checksums_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore as a user may configure it: no checksum unless the operation requires one,
    so only the checksum the store asks for itself is sent."""
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")


def _has_checksum(headers: dict[str, str]) -> bool:
    """A flexible checksum, in a header (plain HTTP) or announced for the trailer (HTTPS)."""
    return headers.get("x-amz-sdk-checksum-algorithm") == "CRC32" and (
        "x-amz-checksum-crc32" in headers or headers.get("x-amz-trailer") == "x-amz-checksum-crc32"
    )


@pytest.mark.services
@pytest.mark.usefixtures("checksums_when_required")
def test_a_single_put_carries_the_retention_and_a_checksum(
    settings: Settings, locked_bucket: str
) -> None:
    store = _locked_store(settings, locked_bucket)
    sent = _record_requests(store._client)
    key = f"{settings.s3_prefix}one.parquet"
    before = dt.datetime.now(dt.UTC)
    assert store.put_create_only(key, b"archived bytes", "application/vnd.apache.parquet")
    after = dt.datetime.now(dt.UTC)

    [(operation, headers, _)] = sent
    assert operation == "PutObject"
    assert headers["x-amz-object-lock-mode"] == "GOVERNANCE"
    assert _within(_retain_until(headers), before, after, 3)
    assert _has_checksum(headers), headers
    assert headers["if-none-match"] == "*"  # still create-only

    head = store._client.head_object(Bucket=locked_bucket, Key=key)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert _within(head["ObjectLockRetainUntilDate"], before, after, 3)
    # A second write of the key is still refused (and sends the retention again, harmlessly).
    assert store.put_create_only(key, b"other bytes", "application/vnd.apache.parquet") is False


@pytest.mark.services
@pytest.mark.usefixtures("checksums_when_required")
def test_a_multipart_upload_carries_the_retention_and_a_checksum_on_every_part(
    settings: Settings, locked_bucket: str
) -> None:
    store = _locked_store(settings, locked_bucket)
    sent = _record_requests(store._client)
    key = f"{settings.s3_prefix}big.parquet"
    body = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB: three parts of at most 5 MiB
    before = dt.datetime.now(dt.UTC)
    assert store.put_create_only(key, body, "application/vnd.apache.parquet")
    after = dt.datetime.now(dt.UTC)

    operations = [operation for operation, _, _ in sent]
    assert operations == ["CreateMultipartUpload", *["UploadPart"] * 3, "CompleteMultipartUpload"]
    create = sent[0][1]
    assert create["x-amz-object-lock-mode"] == "GOVERNANCE"
    assert _within(_retain_until(create), before, after, 3)
    assert create["x-amz-checksum-algorithm"] == "CRC32"
    for _, headers, _ in sent[1:4]:
        assert _has_checksum(headers), headers
    # An upload that declared a checksum algorithm completes naming each part's checksum.
    assert sent[4][2].count(b"<ChecksumCRC32>") == 3
    got = store._client.get_object(Bucket=locked_bucket, Key=key)["Body"].read()
    assert got == body


@pytest.mark.services
def test_without_a_lock_or_with_retain_false_no_retention_is_sent(
    settings: Settings, locked_bucket: str
) -> None:
    for store, retain in ((_locked_store(settings, locked_bucket, None), True),
                          (_locked_store(settings, locked_bucket), False)):
        sent = _record_requests(store._client)
        for size in (10, 7 * 1024 * 1024):
            key = f"{settings.s3_prefix}{unique('plain')}"
            assert store.put_create_only(key, b"x" * size, "application/json", retain=retain)
            assert "ObjectLockMode" not in store._client.head_object(Bucket=locked_bucket, Key=key)
        assert sent
        assert not [h for _, h, _ in sent if "x-amz-object-lock-mode" in h]


@pytest.mark.services
def test_the_start_check_passes_a_lock_enabled_bucket_and_refuses_one_without(
    settings: Settings, locked_bucket: str
) -> None:
    _locked_store(settings, locked_bucket).check_bucket()
    _locked_store(settings, settings.require("s3_bucket"), None).check_bucket()
    plain = settings.require("s3_bucket")
    with pytest.raises(
        ConfigurationError,
        match=f"AUDIT_LOG_OBJECT_LOCK_DAYS: bucket '{plain}' does not have S3 Object Lock enabled",
    ):
        _locked_store(settings, plain).check_bucket()
    # A missing bucket is still named as such, not as a bucket without Object Lock.
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_AWS_S3_BUCKET: bucket 'no-such-"):
        _locked_store(settings, "no-such-bucket-here").check_bucket()


@pytest.mark.services
def test_the_start_check_waits_out_s3_being_unreachable(
    settings: Settings, locked_bucket: str
) -> None:
    """S3 gone between the bucket check and the Object Lock check: no answer is not a "not
    enabled"; the check waits and passes once S3 is back."""
    host, port = "127.0.0.1", int(str(settings.aws_endpoint_url_s3).rsplit(":", 1)[1])
    proxy = TcpProxy(host, port)
    proxy.up()
    try:
        through = dataclasses.replace(settings, aws_endpoint_url_s3=proxy.url)
        store = _locked_store(through, locked_bucket)
        asked: list[str] = []

        def cut_once(**_: Any) -> None:
            if not asked:
                proxy.down()
            asked.append("asked")

        store._client.meta.events.register(
            "before-call.s3.GetObjectLockConfiguration", cut_once
        )
        failure: list[BaseException] = []

        def check() -> None:
            try:
                store.check_bucket()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failure.append(exc)

        thread = threading.Thread(target=check, daemon=True)
        thread.start()
        wait_until("three tries of the Object Lock check", lambda: len(asked), lambda n: n >= 3, 60)
        assert thread.is_alive() and not failure, failure
        proxy.up()
        thread.join(60)
        assert not thread.is_alive()
        assert not failure, failure
    finally:
        proxy.down()


# -- a real consumer -------------------------------------------------------------------------


@pytest.mark.services
def test_a_consumer_with_object_lock_days_refuses_a_bucket_without_object_lock(
    stack_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    bucket = settings.require("s3_bucket")
    create_stream(settings)
    env = consumer_env(stack_env, settings, AUDIT_LOG_OBJECT_LOCK_DAYS="30")
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging.consumer", "--flush-interval", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "AUDIT_LOG_OBJECT_LOCK_DAYS" in done.stderr
    assert f"bucket '{bucket}' does not have S3 Object Lock enabled" in done.stderr
    assert "put-object-lock-configuration" in done.stderr
    # It refused before claiming the archive or writing anything.
    assert s3_keys(settings) == []


@pytest.mark.services
@pytest.mark.slow
def test_a_consumer_writes_every_archived_object_under_retention(
    settings: Settings, locked_bucket: str, start_consumer: StartConsumer, tmp_path: Path
) -> None:
    """Archive, dead-letter, digest and public-key objects all carry the retention; the
    group's marker does not (deleting it is how an archive is handed over)."""
    locked = dataclasses.replace(settings, s3_bucket=locked_bucket)
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(new_private_pem())
    records = make_records(20)
    publish(settings, [*bodies_of(records[:10]), b"this is not json", *bodies_of(records[10:])])
    before = dt.datetime.now(dt.UTC)
    consumer = start_consumer(
        "--batch-size", "100", "--flush-interval", "1",
        env={
            "AUDIT_LOG_AWS_S3_BUCKET": locked_bucket,
            "AUDIT_LOG_OBJECT_LOCK_DAYS": "2",
            "AUDIT_LOG_SIGNING_KEY_FILE": str(key_file),
        },
    )
    wait_until(
        "20 records and 1 dead letter in S3",
        lambda: (len(archived_log_ids(locked)), len(dead_letters(locked))),
        lambda counts: counts == (20, 1),
        120,
    )
    assert consumer.stop() == 0, consumer.log()  # the last digest is written at shutdown
    after = dt.datetime.now(dt.UTC)
    assert f"bucket '{locked_bucket}' are written under S3 Object Lock: GOVERNANCE for 2 days" in (
        consumer.log()
    )

    client = make_s3_client(settings)
    marker = marker_key(settings.s3_prefix, settings.rabbitmq_stream_name)
    written = s3_keys(locked)
    kinds = {
        "archive": [k for k in written if k.endswith(".parquet")],
        "dead letter": [k for k in written if "/dead-letter/" in k],
        "digest": [k for k in written if "/digest/" in k and k.endswith(".json")],
        "public key": [k for k in written if "/digest/public-keys/" in k],
    }
    assert all(kinds.values()), kinds
    retained = [key for keys in kinds.values() for key in keys]
    assert sorted([*retained, marker]) == sorted(written)
    for key in retained:
        head = client.head_object(Bucket=locked_bucket, Key=key)
        assert head.get("ObjectLockMode") == "GOVERNANCE", key
        assert _within(head["ObjectLockRetainUntilDate"], before, after, 2), key
    assert "ObjectLockMode" not in client.head_object(Bucket=locked_bucket, Key=marker)
    # Nothing went to the stack's own bucket.
    assert s3_keys(settings) == []
