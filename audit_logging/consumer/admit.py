"""One stream message into the filling batch, or into a dead letter: whatever it holds.

Every step the consumer takes for one record before the sinks (decode, where the record
goes, the duplicate memory) runs here under one rule: a fault of the message, expected or
not, costs that message a dead letter naming the step and the error, never the consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from audit_logging.archive import layout
from audit_logging.consumer.dead_letter import DeadLetter, Stage, failure
from audit_logging.consumer.dedup import RecentIds, content_digest
from audit_logging.consumer.messages import NotARecord, decode
from audit_logging.search_index import index_for

_log = logging.getLogger("audit_logging.consumer")

def _run(step: Stage, work: Callable[[], Any]) -> Any:
    try:
        return work()
    except NotARecord:
        raise
    except Exception as exc:  # one record's fault, never the consumer's
        raise _StepFailed(step, exc) from exc


class _StepFailed(Exception):  # noqa: N818 - carries a dead letter's reason
    def __init__(self, step: Stage, exc: BaseException) -> None:
        super().__init__(step)
        self.step = step
        self.code, self.reason = failure(step, exc)


class Admission:
    """Decides what a message is; keeps the duplicate memory."""

    def __init__(self, recent: RecentIds, index_prefix: str) -> None:
        self._recent = recent
        self._prefix = index_prefix

    def admit(
        self, raw: bytes, offset: int, broker_timestamp: int
    ) -> dict[str, Any] | DeadLetter | None:
        """The record to archive and index, a dead letter, or None for a resend of a
        record remembered with the same content (dropped)."""
        body = raw
        try:
            body, record = _run("decode", lambda: decode(raw))
            # Where the record goes (its month's index, its archive day): computed now so a
            # timestamp no sink can place is this record's dead letter, not a failed batch.
            _run(
                "prepare",
                lambda: (index_for(self._prefix, record["timestamp"]), layout.day_of(record)),
            )
            digest = _run("dedup", lambda: content_digest(record))
            seen = _run("dedup", lambda: self._recent.remember(record["log_id"], digest))
        except NotARecord as exc:
            return DeadLetter(
                offset, "decode", exc.reason, exc.body, broker_timestamp, code=exc.code
            )
        except _StepFailed as exc:
            _log.warning("offset %d dead-lettered: %s", offset, exc.reason)
            return DeadLetter(offset, exc.step, exc.reason, body, broker_timestamp, code=exc.code)
        if seen == "other":
            log_id = record["log_id"]
            reason = (
                f"duplicate_log_id: log_id {log_id!r} was read before with other content; "
                "the first version stands"
            )
            return DeadLetter(
                offset, "dedup", reason, body, broker_timestamp, log_id, code="duplicate_log_id"
            )
        if seen == "same":
            return None
        result: dict[str, Any] = record
        return result

    def warm(self, raw: bytes) -> None:
        """Remember the log_id of a message acknowledged before this start; skip what
        cannot be decoded (it was dead-lettered when first read)."""
        try:
            _, record = decode(raw)
            self._recent.remember(record["log_id"], content_digest(record))
        except Exception:  # noqa: BLE001, S110 - a message that failed is no id to remember
            pass
