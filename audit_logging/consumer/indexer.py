"""Bulk indexing into the monthly indices, each item resolved: indexed, retried or refused.

``_id`` is the record's log_id and the op is ``index``, so writing a record again (a replay
after a crash) overwrites it with the same document: OpenSearch holds each log_id once.
Items refused with 429 or a 5xx status are retried with backoff, for as long as it takes;
other 4xx refusals (a mapping error, say) are returned to the caller, who dead-letters them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from audit_logging.consumer.retry import Waiter
from audit_logging.search_index import index_for

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

_log = logging.getLogger("audit_logging.consumer")
_FILTER_PATH: Final = "errors,items.*.status,items.*.error.type,items.*.error.reason"
_MAX_REASON: Final = 2000


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A document OpenSearch will not take as it is; ``position`` is its index in the input."""

    position: int
    status: int
    reason: str


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _index_name(prefix: str, timestamp: str) -> str:
    # Checked records carry "YYYY-MM-DDT...Z" (UTC): slicing is exact and much cheaper than
    # parsing every timestamp.
    if len(timestamp) >= 20 and timestamp[4] == "-" and timestamp.endswith("Z"):
        return f"{prefix}-{timestamp[:4]}.{timestamp[5:7]}"
    return index_for(prefix, timestamp)


def _reason(error: Any) -> str:
    if isinstance(error, Mapping):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    else:
        text = str(error)
    return text[:_MAX_REASON]


class Indexer:
    def __init__(
        self,
        client: OpenSearch,
        prefix: str,
        abandon: threading.Event,
        *,
        max_docs: int = 5000,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._abandon = abandon
        self._max_docs = max_docs
        self._max_bytes = max_bytes

    def _lines(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        lines = []
        for record in records:
            index = _index_name(self._prefix, record["timestamp"])
            # Both are checked names (index prefix pattern, UUID): nothing to escape.
            action = f'{{"index":{{"_index":"{index}","_id":"{record["log_id"]}"}}}}\n'
            source = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            lines.append((action + source + "\n").encode("utf-8"))
        return lines

    def index(self, records: Sequence[Mapping[str, Any]]) -> list[Refusal]:
        """Index ``records``; returns once every one is indexed or refused for good."""
        lines = self._lines(records)
        refusals: list[Refusal] = []
        pending = list(range(len(records)))
        waiter = Waiter("OpenSearch", self._abandon)
        while pending:
            waiter.check()
            retry: list[int] = []
            for chunk in self._chunks(pending, lines):
                outcome = self._send(chunk, lines, waiter)
                for position, status, error in outcome:
                    if _retryable(status):
                        retry.append(position)
                    elif status >= 300:
                        refusals.append(Refusal(position, status, _reason(error)))
            if retry:
                waiter.failed(f"{len(retry)} of {len(pending)} documents refused for now (busy)")
            pending = retry
        waiter.succeeded()
        return refusals

    def _chunks(self, positions: list[int], lines: list[bytes]) -> list[list[int]]:
        chunks: list[list[int]] = []
        chunk: list[int] = []
        size = 0
        for position in positions:
            length = len(lines[position])
            if chunk and (len(chunk) >= self._max_docs or size + length > self._max_bytes):
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(position)
            size += length
        if chunk:
            chunks.append(chunk)
        return chunks

    def _send(
        self, chunk: list[int], lines: list[bytes], waiter: Waiter
    ) -> list[tuple[int, int, Any]]:
        """(position, status, error) for each document of one bulk request."""
        body = b"".join(lines[p] for p in chunk)
        while True:
            waiter.check()
            try:
                response = self._client.bulk(body=body, params={"filter_path": _FILTER_PATH})
            except OpenSearchConnectionError as exc:
                waiter.failed(f"{type(exc).__name__}: {exc.error}")
                continue
            except TransportError as exc:
                status = exc.status_code if isinstance(exc.status_code, int) else 0
                if status == 413 and len(chunk) > 1:
                    # Too large for the cluster's http.max_content_length: halve it.
                    half = len(chunk) // 2
                    return self._send(chunk[:half], lines, waiter) + self._send(
                        chunk[half:], lines, waiter
                    )
                if status == 413:
                    return [(chunk[0], 413, "request too large for OpenSearch")]
                waiter.failed(f"HTTP {exc.status_code} {_reason(exc.error)}")
                continue
            break
        if not response.get("errors"):
            return [(p, 200, None) for p in chunk]
        items = response.get("items", [])
        if len(items) != len(chunk):
            # Never guess which document an item belongs to: send them all again.
            _log.warning(
                "bulk answered %d items for %d documents; retrying", len(items), len(chunk)
            )
            time.sleep(0.5)
            return [(p, 503, "item count mismatch") for p in chunk]
        results = []
        for position, item in zip(chunk, items, strict=True):
            result = next(iter(item.values()))
            results.append((position, int(result.get("status", 503)), result.get("error")))
        return results
