"""S3 Object Lock for what the consumer archives (``AUDIT_LOG_OBJECT_LOCK_DAYS``).

With it set, every archive, dead-letter, digest and public-key object is written with its
own retention (``x-amz-object-lock-mode`` and ``-retain-until-date``): until that date nobody
may delete or overwrite it (COMPLIANCE), or only someone allowed to bypass governance
retention may (GOVERNANCE). S3 refuses such a write into a bucket without Object Lock, so the
consumer checks the bucket at start and refuses to run, saying how to fix it, rather than
failing on its first batch.

S3 takes a retention header only with a checksum of the body (Content-MD5 or a flexible
checksum); the writes ask botocore for one explicitly (:data:`CHECKSUM_ALGORITHM`), whatever
the client's ``request_checksum_calculation`` says.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from audit_logging.errors import ConfigurationError, shown

if TYPE_CHECKING:
    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")
CHECKSUM_ALGORITHM: Final = "CRC32"
# What GetObjectLockConfiguration answers for a bucket that never had Object Lock.
NOT_CONFIGURED: Final = "ObjectLockConfigurationNotFoundError"


@dataclasses.dataclass(frozen=True)
class ObjectLock:
    """The retention each object gets: ``mode`` (GOVERNANCE or COMPLIANCE) for ``days``."""

    mode: str
    days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectLock | None:
        if settings.object_lock_days is None:
            return None
        return cls(settings.object_lock_mode, settings.object_lock_days)

    def retain_until(self, now: dt.datetime | None = None) -> dt.datetime:
        start = now or dt.datetime.now(dt.UTC)
        return start.replace(microsecond=0) + dt.timedelta(days=self.days)

    def write_args(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """The arguments of PutObject / CreateMultipartUpload that set the retention."""
        return {
            "ObjectLockMode": self.mode,
            "ObjectLockRetainUntilDate": self.retain_until(now),
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
        }

    def describe(self) -> str:
        return f"{self.mode} for {self.days} day{'s' if self.days != 1 else ''}"


def _fix(bucket: str) -> str:
    return (
        "enable it with `aws s3api put-object-lock-configuration --bucket "
        f"{bucket} --object-lock-configuration ObjectLockEnabled=Enabled` (the bucket needs "
        "versioning on), or create the bucket with `aws s3api create-bucket "
        "--object-lock-enabled-for-bucket`; or unset AUDIT_LOG_OBJECT_LOCK_DAYS to write "
        "without retention"
    )


def check_configuration(
    bucket: str, configuration: Mapping[str, Any] | None, lock: ObjectLock
) -> None:
    """Refuse a bucket whose GetObjectLockConfiguration answer (``None``: it has none) does
    not say Object Lock is enabled; warn once when its default retention differs from ours,
    since the retention each object is written with replaces the bucket's default."""
    if configuration is None or configuration.get("ObjectLockEnabled") != "Enabled":
        raise ConfigurationError(
            "AUDIT_LOG_OBJECT_LOCK_DAYS",
            f"bucket {bucket!r} does not have S3 Object Lock enabled, so objects cannot be "
            f"written into it with retention; {_fix(bucket)}",
        )
    rule = configuration.get("Rule")
    default = rule.get("DefaultRetention") if isinstance(rule, Mapping) else None
    if isinstance(default, Mapping):
        mode, days, years = default.get("Mode"), default.get("Days"), default.get("Years")
        if mode != lock.mode or days != lock.days:
            # The answer comes from the bucket: bounded and escaped before it is logged.
            period = f"{shown(str(years))} years" if years else f"{shown(str(days))} days"
            _log.warning(
                "bucket '%s' has a default Object Lock retention of %s for %s; the consumer "
                "writes each object with its own retention, %s (AUDIT_LOG_OBJECT_LOCK_MODE, "
                "AUDIT_LOG_OBJECT_LOCK_DAYS), which S3 applies instead of the default",
                bucket,
                shown(str(mode)),
                period,
                lock.describe(),
            )
    _log.info(
        "archive objects in bucket '%s' are written under S3 Object Lock: %s",
        bucket,
        lock.describe(),
    )
