"""``python -m tests.consumer._crashing_consumer N [consumer arguments]``: the consumer, whose
process ends with ``os._exit(137)`` (as a SIGKILL would end it) right after its Nth Parquet
upload and before that batch's offset is stored: the one moment where a naive consumer would
archive a batch twice when it starts again."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from audit_logging.consumer.__main__ import main


def crash_after(uploads: int) -> Callable[[str], None]:
    count = 0
    lock = threading.Lock()

    def uploaded(key: str) -> None:
        nonlocal count
        with lock:
            count += 1
            if count < uploads:
                return
        logging.getLogger("audit_logging.consumer").warning(
            "test hook: exiting after upload %d (%s)", count, key
        )
        logging.shutdown()
        os._exit(137)

    return uploaded


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[2:], on_uploaded=crash_after(int(sys.argv[1]))))
