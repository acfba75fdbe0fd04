"""Test hooks: fault injection for the crash tests. Never set these in production.

``AUDIT_LOG_TEST_CRASH_AFTER_UPLOAD=N`` makes the consumer process end with ``os._exit(137)``
(as if SIGKILLed) right after its Nth Parquet upload to S3 and before the stream offset is
stored: the one moment where a naive consumer would archive a batch twice on restart.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Final

from audit_logging.errors import ConfigurationError

CRASH_AFTER_UPLOAD_ENV: Final = "AUDIT_LOG_TEST_CRASH_AFTER_UPLOAD"
_log = logging.getLogger("audit_logging.consumer")


def crash_after_upload_from(environ: Mapping[str, str]) -> int | None:
    raw = environ.get(CRASH_AFTER_UPLOAD_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(CRASH_AFTER_UPLOAD_ENV, f"must be a positive integer, got {raw!r}")
    return int(raw)


class UploadCrasher:
    """Counts Parquet uploads and kills the process after the configured one."""

    def __init__(self, after: int | None) -> None:
        self._after = after
        self._count = 0
        self._lock = threading.Lock()

    def uploaded(self, key: str) -> None:
        if self._after is None:
            return
        with self._lock:
            self._count += 1
            if self._count < self._after:
                return
        _log.warning("%s: exiting after upload %d (%s)", CRASH_AFTER_UPLOAD_ENV, self._count, key)
        logging.shutdown()
        os._exit(137)
