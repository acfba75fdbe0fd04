"""Log_ids are write-once: what to do with a record whose log_id OpenSearch already holds.

The index holds each log_id once (``create``, never ``index``), across all its monthly
indices: before each bulk request the batch's log_ids are looked up in ``{prefix}-*``, so a
reused log_id whose first record lies in another month is found too; a ``create`` that still
meets a version conflict (the first was written less than a refresh ago) is looked up again
with a real-time get. What is found is compared with the new record:

* same stream position: the same message read again after a crash (``replay``); it is in
  the index already and the archive ledger decides whether S3 has it;
* same content, other position: the record was sent twice (``resend``); the first copy is
  indexed and archived, this one is dropped without a dead letter;
* other content: the log_id is reused (``conflict``); dead-lettered as ``duplicate_log_id``,
  the first version stays in the index and the archive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

# Where in the stream a document's record was read, "{stream}:{offset}": tells a replay of
# the same message from a second message carrying the same record.
POSITION_FIELD: Final = "stream_position"

Verdict = Literal["replay", "resend", "conflict"]


def stream_position(stream: str, offset: int) -> str:
    return f"{stream}:{offset}"


def _content(document: Mapping[str, Any]) -> dict[str, Any]:
    # A missing field and a null one are the same record.
    return {k: v for k, v in document.items() if k != POSITION_FIELD and v is not None}


def verdict(stored: Mapping[str, Any], record: Mapping[str, Any], position: str | None) -> Verdict:
    """What a record is, given the document OpenSearch already holds under its log_id."""
    if _content(stored) != _content(record):
        return "conflict"
    if position is not None and stored.get(POSITION_FIELD) == position:
        return "replay"
    return "resend"


def conflict_reason(log_id: str, index: str, stored: Mapping[str, Any]) -> str:
    where = stored.get(POSITION_FIELD)
    first = f" (read at stream position {json.dumps(where)[:200]})" if where else ""
    return (
        f"duplicate_log_id: log_id {log_id!r} already holds another record in {index}"
        f"{first}; the first version stands"
    )
