"""Dead letters: messages that cannot be archived or indexed, kept in S3 with the reason.

``{AUDIT_LOG_S3_PREFIX}dead-letter/{stream}-{first_offset:020d}-{last_offset:020d}.ndjson``,
one JSON object per line, one file per batch that had any. ``stage`` says where the message
failed: ``decode`` (not a record: not AMQP, not UTF-8, not JSON, too large, too deep,
invalid), ``dedup`` (its log_id already holds another record: ``duplicate_log_id``; the first
stays), ``prepare`` (an unexpected error computing where the record goes), ``index`` (a valid
record OpenSearch refused; it is still in the Parquet archive) or ``archive`` (an unexpected
error building its Parquet row). ``code`` is a short machine-readable reason (``not_json``,
``duplicate_log_id``, ``index_refused``, ...), ``reason`` the human explanation.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from audit_logging.errors import describe_error
from audit_logging.record import format_timestamp

DEAD_LETTER_DIR: Final = "dead-letter/"
# Bodies larger than this are kept in part (with their full size and SHA-256): enough to see
# what was sent, without letting one huge message blow up the dead-letter file.
MAX_KEPT_BODY: Final = 1024 * 1024

Stage = Literal["decode", "dedup", "prepare", "index", "archive"]
_MAX_REASON: Final = 300


def failure(step: Stage, exc: BaseException) -> tuple[str, str]:
    """(code, reason) for an unexpected error of ``step`` on one record."""
    return f"{step}_error", describe_error(exc, _MAX_REASON, f"{step} failed on this record: ")


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    offset: int
    stage: Stage
    reason: str
    body: bytes
    # The broker's time for the message's chunk, milliseconds since the epoch.
    broker_timestamp: int
    log_id: str | None = None
    # Short and stable (``duplicate_log_id``); empty means the stage's name.
    code: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def dead_letter_dir(s3_prefix: str) -> str:
    return f"{s3_prefix}{DEAD_LETTER_DIR}"


def dead_letter_key(s3_prefix: str, stream: str, first: int, last: int) -> str:
    return f"{dead_letter_dir(s3_prefix)}{stream}-{first:020d}-{last:020d}.ndjson"


def dead_letter_key_re(s3_prefix: str, stream: str) -> re.Pattern[str]:
    return re.compile(
        "^"
        + re.escape(f"{dead_letter_dir(s3_prefix)}{stream}-")
        + r"([0-9]{20})-([0-9]{20})\.ndjson\Z"
    )


def encode(stream: str, letters: Sequence[DeadLetter]) -> bytes:
    now = format_timestamp(dt.datetime.now(dt.UTC))
    lines = []
    for letter in sorted(letters, key=lambda item: item.offset):
        kept = letter.body[:MAX_KEPT_BODY]
        entry: dict[str, Any] = {
            "stream": stream,
            "offset": letter.offset,
            "stage": letter.stage,
            "code": letter.code or letter.stage,
            "reason": letter.reason,
            "log_id": letter.log_id,
            "broker_timestamp": format_timestamp(
                dt.datetime.fromtimestamp(letter.broker_timestamp / 1000, dt.UTC)
            ),
            "dead_lettered_at": now,
            "body_bytes": len(letter.body),
            "body_sha256": letter.sha256,
            "body_truncated": len(kept) < len(letter.body),
            "body_base64": base64.b64encode(kept).decode("ascii"),
        }
        lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8")


def identities(ndjson: bytes) -> Iterable[tuple[int, str, str]]:
    """(offset, stage, body SHA-256) of each entry of a dead-letter file."""
    for line in ndjson.splitlines():
        if line.strip():
            entry = json.loads(line)
            yield int(entry["offset"]), str(entry["stage"]), str(entry["body_sha256"])
