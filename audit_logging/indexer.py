"""Bulk indexing into the monthly indices, each item resolved: indexed, retried or refused.

Used by the consumer (records read from the stream) and by the archive's ``reindex`` and
``verify --repair`` (records read back from S3), so both write under the same rules.

``_id`` is the record's log_id and the op is ``create``: a log_id is written once, and what
the index already holds under it is sorted out by :mod:`.write_once` (a replay after a crash
counts as indexed; a resend or a reused log_id is returned to the caller).
Items refused with 429 or a 5xx status are retried with backoff, for as long as it takes;
other 4xx refusals (a mapping error, say) are returned to the caller, who dead-letters them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from audit_logging import write_once
from audit_logging.errors import describe_error
from audit_logging.retry import Waiter
from audit_logging.search_index import index_for, index_pattern

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

_log = logging.getLogger("audit_logging.indexer")
_FILTER_PATH: Final = "errors,items.*.status,items.*.error.type,items.*.error.reason"
_MAX_REASON: Final = 2000
# log_ids per existence lookup: one terms query, well under OpenSearch's terms and
# result-window limits.
_LOOKUP_IDS: Final = 1000


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A document that was not indexed; ``position`` is its index in the input.

    ``code``: ``index_refused`` (OpenSearch will not take it as it is), ``index_action`` (its
    bulk action could not be built), ``duplicate_log_id`` (the log_id holds another record)
    or ``resend`` (the log_id holds this same record, read at another stream position).
    """

    position: int
    status: int
    reason: str
    code: str = "index_refused"


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _reason(error: Any) -> str:
    if isinstance(error, Mapping):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    else:
        text = str(error)
    return text[:_MAX_REASON]


@dataclasses.dataclass(eq=False)
class Indexer:
    """Writes records once into the monthly indices ``{prefix}-YYYY.MM``, in bulk requests of
    at most ``max_docs`` documents and ``max_bytes`` bytes, retrying until ``abandon``."""

    client: OpenSearch
    prefix: str
    abandon: threading.Event
    _: dataclasses.KW_ONLY
    max_docs: int = 5000
    max_bytes: int = 16 * 1024 * 1024
    # How a wait for OpenSearch is reported and how long it lasts; None: the consumer's,
    # until ``abandon`` is set.
    waiter: Callable[[], Waiter] | None = None
    # Called with the seconds of each bulk request, answered or failed (the consumer's
    # latency histogram).
    on_bulk: Callable[[float], None] | None = None

    def _waiter(self) -> Waiter:
        return self.waiter() if self.waiter is not None else Waiter("OpenSearch", self.abandon)

    def _line(self, index: str, record: Mapping[str, Any], position: str | None) -> bytes:
        # Both are checked names (index prefix pattern, UUID): nothing to escape.
        action = f'{{"create":{{"_index":"{index}","_id":"{record["log_id"]}"}}}}\n'
        source = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        if position is not None:
            field = json.dumps(position, ensure_ascii=False)
            source = f'{source[:-1]},"{write_once.POSITION_FIELD}":{field}}}'
        return (action + source + "\n").encode("utf-8")

    def index(
        self, records: Sequence[Mapping[str, Any]], positions: Sequence[str] | None = None
    ) -> list[Refusal]:
        """Index ``records`` (read at stream ``positions``); returns once every one is
        indexed or not indexed for good (see :class:`Refusal`)."""
        refusals: list[Refusal] = []
        names: list[str] = []
        lines: list[bytes] = []
        pending = []
        for p, record in enumerate(records):
            try:
                names.append(index_for(self.prefix, record["timestamp"]))
                lines.append(self._line(names[-1], record, positions[p] if positions else None))
            except Exception as exc:  # noqa: BLE001 - one record's fault, never the consumer's
                names.append("")
                lines.append(b"")
                text = describe_error(exc, _MAX_REASON, "index_action: ")
                refusals.append(Refusal(p, 0, text, "index_action"))
            else:
                pending.append(p)
        waiter = self._waiter()
        stored = self._lookup([records[p]["log_id"] for p in pending], waiter)
        if stored:
            pending = self._screen(records, positions, pending, stored, refusals)
        while pending:
            waiter.check()
            retry: list[int] = []
            conflicts: list[int] = []
            for chunk in self._chunks(pending, lines):
                outcome = self._send(chunk, lines, waiter)
                for position, status, error in outcome:
                    if _retryable(status):
                        retry.append(position)
                    elif status == 409:
                        conflicts.append(position)
                    elif status >= 300:
                        refusals.append(Refusal(position, status, _reason(error)))
            if conflicts:
                # Written less than a refresh ago (the lookup cannot see it yet): a real-time
                # get can. One that vanished since (retention) is tried again.
                found = self._get(conflicts, names, records, waiter)
                retry.extend(p for p in conflicts if records[p]["log_id"] not in found)
                self._screen(records, positions, conflicts, found, refusals)
            if retry:
                waiter.failed(f"{len(retry)} of {len(pending)} documents refused for now (busy)")
            pending = retry
        waiter.succeeded()
        refusals.sort(key=lambda refusal: refusal.position)
        return refusals

    def _screen(
        self,
        records: Sequence[Mapping[str, Any]],
        positions: Sequence[str] | None,
        pending: list[int],
        stored: Mapping[str, tuple[str, Mapping[str, Any]]],
        refusals: list[Refusal],
    ) -> list[int]:
        """``pending`` less the records whose log_id ``stored`` holds; those not replays are
        added to ``refusals``."""
        rest = []
        for p in pending:
            record = records[p]
            found = stored.get(record["log_id"])
            if found is None:
                rest.append(p)
                continue
            index, source = found
            verdict = write_once.verdict(source, record, positions[p] if positions else None)
            if verdict == "conflict":
                reason = write_once.conflict_reason(record["log_id"], index, source)
                refusals.append(Refusal(p, 409, reason[:_MAX_REASON], "duplicate_log_id"))
            elif verdict == "resend":
                refusals.append(Refusal(p, 409, f"already indexed in {index}", "resend"))
        return rest

    def _lookup(
        self, log_ids: Sequence[str], waiter: Waiter
    ) -> dict[str, tuple[str, Mapping[str, Any]]]:
        """(index, source) of the documents already held under ``log_ids``, in any month."""
        found: dict[str, tuple[str, Mapping[str, Any]]] = {}
        unique = list(dict.fromkeys(log_ids))
        for start in range(0, len(unique), _LOOKUP_IDS):
            part = unique[start : start + _LOOKUP_IDS]
            body = {
                # Twice the ids: room for a log_id an older version indexed in two months.
                "size": 2 * len(part),
                "track_total_hits": False,
                "query": {"terms": {"log_id": part}},
            }
            response = self._retrying(
                "looking up log_ids",
                waiter,
                functools.partial(
                    self.client.search,
                    index=index_pattern(self.prefix),
                    body=body,
                    params={"allow_no_indices": "true", "ignore_unavailable": "true"},
                ),
            )
            for hit in response.get("hits", {}).get("hits", []):
                found.setdefault(str(hit["_id"]), (str(hit["_index"]), hit.get("_source") or {}))
        return found

    def _get(
        self,
        conflicts: Sequence[int],
        names: Sequence[str],
        records: Sequence[Mapping[str, Any]],
        waiter: Waiter,
    ) -> dict[str, tuple[str, Mapping[str, Any]]]:
        docs = [{"_index": names[p], "_id": records[p]["log_id"]} for p in conflicts]
        response = self._retrying(
            "reading a conflicting document",
            waiter,
            lambda: self.client.mget(body={"docs": docs}),
        )
        return {
            str(doc["_id"]): (str(doc["_index"]), doc.get("_source") or {})
            for doc in response.get("docs", [])
            if doc.get("found")
        }

    def _retrying(self, what: str, waiter: Waiter, call: Callable[[], Any]) -> Mapping[str, Any]:
        while True:
            waiter.check()
            try:
                response: Mapping[str, Any] = call()
            except TransportError as exc:  # the connection errors too
                status, error = exc.status_code, _reason(exc.error)
                waiter.failed(f"{what}: {type(exc).__name__} {status} {error}")
                continue
            failed = response.get("_shards", {}).get("failed")
            if failed:
                # A partial answer could miss the first version of a log_id.
                waiter.failed(f"{what}: {failed} shard(s) failed")
                continue
            return response

    def _bulk_took(self, began: float) -> None:
        if self.on_bulk is not None:
            self.on_bulk(time.monotonic() - began)

    def _chunks(self, positions: list[int], lines: list[bytes]) -> list[list[int]]:
        chunks: list[list[int]] = []
        chunk: list[int] = []
        size = 0
        for position in positions:
            length = len(lines[position])
            if chunk and (len(chunk) >= self.max_docs or size + length > self.max_bytes):
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
            began = time.monotonic()
            try:
                response = self.client.bulk(body=body, params={"filter_path": _FILTER_PATH})
            except OpenSearchConnectionError as exc:
                self._bulk_took(began)
                waiter.failed(describe_error(exc))
                continue
            except TransportError as exc:
                self._bulk_took(began)
                status = exc.status_code if isinstance(exc.status_code, int) else 0
                if status == 413 and len(chunk) > 1:
                    # Too large for the cluster's http.max_content_length: halve it.
                    half = len(chunk) // 2
                    return self._send(chunk[:half], lines, waiter) + self._send(
                        chunk[half:], lines, waiter
                    )
                if status == 413:
                    return [(chunk[0], 413, "request too large for OpenSearch")]
                waiter.failed(describe_error(exc))
                continue
            self._bulk_took(began)
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
