"""``python -m tests.consumer._slow_archive_consumer SECONDS [consumer arguments]``: the
consumer, each Parquet file taking SECONDS longer to build (a slow archive step before the
upload), so a test can cut the member off the broker while a batch waits for S3."""

from __future__ import annotations

import sys
import time
from typing import Any

from audit_logging.archive import parquet
from audit_logging.consumer.__main__ import main

_parquet_bytes = parquet.parquet_bytes


def _slow_parquet_bytes(*args: Any, **kwargs: Any) -> bytes:
    time.sleep(float(sys.argv[1]))
    return _parquet_bytes(*args, **kwargs)


if __name__ == "__main__":
    parquet.parquet_bytes = _slow_parquet_bytes
    raise SystemExit(main(sys.argv[2:]))
