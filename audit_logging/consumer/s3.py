"""S3 for the consumer: create-only writes, listing and reads, each retried until S3 answers.

Writes are create-only (``If-None-Match: *``, on the single PUT and on the multipart
completion), so an object, once written, is never replaced: a replay that reaches the same
key learns it exists (HTTP 412) instead of writing a second copy. With an
:class:`~audit_logging.consumer.object_lock.ObjectLock` they also carry S3 Object Lock
retention, so nobody can replace or delete them later either.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from audit_logging.consumer.object_lock import (
    CHECKSUM_ALGORITHM,
    NOT_CONFIGURED,
    ObjectLock,
    check_configuration,
)
from audit_logging.errors import ConfigurationError, describe_error
from audit_logging.retry import Waiter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")
T = TypeVar("T")
_EXISTS: Final = frozenset({"PreconditionFailed", "412"})


def make_s3_client(
    settings: Settings, *, connect_timeout: float = 5, read_timeout: float = 60
) -> S3Client:
    secret = settings.aws_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url_s3,
        region_name=settings.aws_region_name,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get() if secret else None,
        # Our own retry loop waits out outages and reports them; botocore's would hide them.
        config=Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=8,
        ),
    )


def _is_exists(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in _EXISTS or status == 412


def _code(exc: ClientError) -> str | None:
    return exc.response.get("Error", {}).get("Code")


def _is_missing(exc: ClientError) -> bool:
    return _code(exc) in ("NoSuchKey", "NoSuchBucket", "404")


def is_missing(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _is_missing(exc)


class S3Store:
    """One bucket, reached through a client that is safe to share between threads."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        abandon: threading.Event,
        *,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = 16 * 1024 * 1024,
        lock: ObjectLock | None = None,
        on_retry: Callable[[], None] | None = None,
        on_put: Callable[[float], None] | None = None,
    ) -> None:
        """``lock``: the Object Lock retention every write gets (None: none). ``on_retry``:
        called at each failed attempt of any call; ``on_put``: with the seconds of each
        attempt to write an object (the consumer's metrics)."""
        self._client = client
        self._on_retry = on_retry
        self._on_put = on_put
        self.bucket = bucket
        self._abandon = abandon
        self.lock = lock
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        waiter = Waiter(f"S3 ({what})", self._abandon, on_retry=self._on_retry)
        while True:
            waiter.check()
            try:
                result = call()
            except ClientError as exc:
                if _is_exists(exc) or _is_missing(exc):
                    raise
                waiter.failed(describe_error(exc))
            except BotoCoreError as exc:
                waiter.failed(describe_error(exc))
            else:
                waiter.succeeded()
                return result

    def check_bucket(self) -> None:
        """Fail with the setting to fix if the bucket is missing or refused; wait if S3 is down."""
        try:
            self._retry("bucket", lambda: self._client.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            raise ConfigurationError(
                "AUDIT_LOG_AWS_S3_BUCKET", f"bucket {self.bucket!r} does not exist"
            ) from None
        if self.lock is not None:
            check_configuration(self.bucket, self._object_lock_configuration(), self.lock)

    def _object_lock_configuration(self) -> dict[str, Any] | None:
        """The bucket's Object Lock configuration, None if it has none; waits while S3 is
        unreachable (an outage is not an answer)."""

        def read() -> dict[str, Any] | None:
            try:
                answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) == NOT_CONFIGURED:
                    return None
                if _code(exc) == "AccessDenied":
                    # Waiting will not grant a permission: say which one is missing.
                    raise ConfigurationError(
                        "AUDIT_LOG_OBJECT_LOCK_DAYS",
                        f"S3 refuses to show the Object Lock configuration of bucket "
                        f"{self.bucket!r} (AccessDenied): the consumer's credentials need "
                        "s3:GetBucketObjectLockConfiguration on it, and s3:PutObjectRetention "
                        "to write with retention",
                    ) from None
                raise
            return dict(answer.get("ObjectLockConfiguration", {}))

        return self._retry("Object Lock configuration", read)

    def put_create_only(
        self,
        key: str,
        body: bytes,
        content_type: str,
        *,
        retain: bool = True,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        """Write ``key`` unless it exists: True if written, False if it was already there.
        ``retain``: with the store's Object Lock retention, if it has one (what is archived);
        False for a bookkeeping object that must stay deletable (the group marker).
        ``metadata``: the object's user metadata (``x-amz-meta-*``)."""
        lock = self.lock if retain else None
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        try:
            if len(body) > self._multipart_threshold:
                self._retry(
                    f"upload {key}",
                    self._timed(lambda: self._multipart(key, body, content_type, lock, extra)),
                )
            else:
                self._retry(
                    f"put {key}",
                    # The retention date is taken at each attempt: it counts from the write.
                    self._timed(
                        lambda: self._client.put_object(
                            Bucket=self.bucket,
                            Key=key,
                            Body=body,
                            ContentType=content_type,
                            IfNoneMatch="*",
                            **(lock.write_args() if lock else {}),
                            **extra,
                        )
                    ),
                )
        except ClientError as exc:
            if _is_exists(exc):
                return False
            raise
        return True

    def _timed(self, call: Callable[[], T]) -> Callable[[], T]:
        on_put = self._on_put
        if on_put is None:
            return call

        def timed() -> T:
            began = time.monotonic()
            try:
                return call()
            finally:
                on_put(time.monotonic() - began)

        return timed

    def _multipart(
        self,
        key: str,
        body: bytes,
        content_type: str,
        lock: ObjectLock | None,
        extra: dict[str, Any],
    ) -> None:
        # With a lock the upload declares a checksum algorithm, so every part carries a
        # checksum (S3 wants one on each part of a retained object) and the completion
        # names each part's.
        upload = self._client.create_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
            **(lock.write_args() if lock else {}),
            **extra,
        )
        upload_id = upload["UploadId"]
        checksum: dict[str, Any] = {"ChecksumAlgorithm": CHECKSUM_ALGORITHM} if lock else {}
        try:
            parts: list[Any] = []
            for number, start in enumerate(range(0, len(body), self._part_size), start=1):
                part = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body[start : start + self._part_size],
                    **checksum,
                )
                entry: dict[str, Any] = {"ETag": part["ETag"], "PartNumber": number}
                if lock and "ChecksumCRC32" in part:  # CHECKSUM_ALGORITHM's
                    entry["ChecksumCRC32"] = part["ChecksumCRC32"]
                parts.append(entry)
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            # Leave no half-finished upload behind (they are billed until aborted).
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (BotoCoreError, ClientError) as exc:
                reason = describe_error(exc)
                _log.warning("could not abort the multipart upload of %s: %s", key, reason)
            raise

    def list_keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        """Keys under ``prefix`` (after ``start_after``), in key order."""
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            elif start_after:
                args["StartAfter"] = start_after
            page = self._retry(
                f"list {prefix}", functools.partial(self._client.list_objects_v2, **args)
            )
            for item in page.get("Contents", []):
                yield item["Key"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def list_folders(self, prefix: str) -> list[str]:
        """The folders (common prefixes, ending in '/') right under ``prefix``."""
        folders: list[str] = []
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                args["ContinuationToken"] = token
            page = self._retry(
                f"list {prefix}", functools.partial(self._client.list_objects_v2, **args)
            )
            folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return folders

    def get(self, key: str) -> bytes:
        """The object's bytes; a ClientError that :func:`is_missing` if it is gone."""

        def get() -> bytes:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        return self._retry(f"get {key}", get)

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The object's bytes and user metadata (names lowercased, as S3 gives them)."""

        def get() -> tuple[bytes, dict[str, str]]:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            return answer["Body"].read(), dict(answer.get("Metadata", {}))

        return self._retry(f"get {key}", get)
