"""Helpers for your own test suite: see what your app audits, without a broker.

    from audit_logging.testing import capture_audit_records

    def test_delete_is_audited():
        with capture_audit_records() as records:
            delete_customer("cus_1")
        assert records[0]["action"] == "DELETE"

Records are built and encoded exactly as for the stream (same checks, same JSON), then
decoded back, so a test sees what the consumer would receive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from audit_logging.capture import AUDIT_LOGGER
from audit_logging.handlers.handler import AuditHandler
from audit_logging.publisher import Encode, RecordRejected
from audit_logging.settings import Settings


class CapturingTransport:
    """A transport that keeps records in memory (``records``) instead of publishing them."""

    def __init__(self, settings: Settings, encode: Encode) -> None:
        self.settings = settings
        self._encode = encode
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []  # what would go on the wire, byte for byte
        self.rejected = 0

    def submit(self, item: Any) -> None:
        try:
            body = self._encode(item)
        except RecordRejected:
            self.rejected += 1
            return
        record = json.loads(body)
        with self._lock:
            self.bodies.append(body)
            self.records.append(record)

    def flush(self, timeout: float) -> int:
        return 0

    def close(self, timeout: float) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {"published": len(self.records), "spooled": 0, "rejected": self.rejected,
                "lost": 0, "pending": 0}


@contextlib.contextmanager
def capture_audit_records(**settings: Any) -> Iterator[list[dict[str, Any]]]:
    """Within the block, audit records (``logging.getLogger("audit")`` and
    ``log_audit_event``) are captured in the yielded list instead of being published."""
    settings.setdefault("env_file", None)
    env_file = settings.pop("env_file")
    handler = AuditHandler(
        transport_factory=CapturingTransport, env_file=env_file, **settings
    )
    audit = logging.getLogger(AUDIT_LOGGER)
    saved = (audit.level, list(audit.handlers))
    # Only this handler during the block, so nothing leaks to a real broker.
    audit.handlers[:] = [handler]
    if audit.level == logging.NOTSET or audit.level > logging.INFO:
        audit.setLevel(logging.INFO)
    transport = handler.transport
    assert isinstance(transport, CapturingTransport)
    try:
        yield transport.records
    finally:
        audit.setLevel(saved[0])
        audit.handlers[:] = saved[1]
        handler.close()
