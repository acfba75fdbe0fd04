"""S3 for the consumer: create-only writes, listing and reads, each retried until S3 answers.

Writes are create-only (``If-None-Match: *``, on the single PUT and on the multipart
completion), so an object, once written, is never replaced: a replay that reaches the same
key learns it exists (HTTP 412) instead of writing a second copy.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from audit_logging.errors import ConfigurationError, describe_error
from audit_logging.retry import Waiter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")
T = TypeVar("T")
_EXISTS: Final = frozenset({"PreconditionFailed", "412"})


def make_s3_client(settings: Settings) -> S3Client:
    secret = settings.aws_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url_s3,
        region_name=settings.aws_region_name,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get() if secret else None,
        # Our own retry loop waits out outages and reports them; botocore's would hide them.
        config=Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=8,
        ),
    )


def _is_exists(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in _EXISTS or status == 412


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404")


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
    ) -> None:
        self._client = client
        self.bucket = bucket
        self._abandon = abandon
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        waiter = Waiter(f"S3 ({what})", self._abandon)
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

    def put_create_only(self, key: str, body: bytes, content_type: str) -> bool:
        """Write ``key`` unless it exists: True if written, False if it was already there."""
        try:
            if len(body) > self._multipart_threshold:
                self._retry(f"upload {key}", lambda: self._multipart(key, body, content_type))
            else:
                self._retry(
                    f"put {key}",
                    lambda: self._client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentType=content_type,
                        IfNoneMatch="*",
                    ),
                )
        except ClientError as exc:
            if _is_exists(exc):
                return False
            raise
        return True

    def _multipart(self, key: str, body: bytes, content_type: str) -> None:
        upload = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        upload_id = upload["UploadId"]
        try:
            parts: list[Any] = []
            for number, start in enumerate(range(0, len(body), self._part_size), start=1):
                part = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body[start : start + self._part_size],
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
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
