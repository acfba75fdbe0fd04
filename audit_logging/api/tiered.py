"""Search and detail over both tiers: the index for the retained months, the archive before
them (:mod:`audit_logging.api.tiers` says where the line is).

Results are the index's then the archive's, newest first, one offset and one cursor running
across both; the total is the sum of both tiers' counts. Archive reads run in a worker
thread, off the event loop. When the archive cannot answer its part (not configured, or a
caller whose visibility filter it cannot apply), the response says so rather than passing
off a partial answer as whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from audit_logging.api.cursor import Cursor
from audit_logging.api.errors import ApiError, InternalError, UnavailableError
from audit_logging.api.params import SearchParams
from audit_logging.api.query import (
    DETAIL_FILTER_PATH,
    SEARCH_FILTER_PATH,
    SUMMARY_FIELDS,
    detail_body,
    search_body,
    search_indices,
)
from audit_logging.api.tiers import ARCHIVE, INDEX, archive_visibility, retained_since, split
from audit_logging.errors import describe_error, shown
from audit_logging.record_filter import RecordFilter
from audit_logging.search_index import index_pattern

if TYPE_CHECKING:
    from opensearchpy import AsyncOpenSearch

    from audit_logging.archive.proof import Proof, RecordProofs
    from audit_logging.archive.search import ArchiveSearch, Page

_log = logging.getLogger("audit_logging.api")
# No index yet is an empty answer; a failed shard is an error, never a silently partial one.
INDEX_OPTIONS: Final = {
    "ignore_unavailable": True,
    "allow_no_indices": True,
    "allow_partial_search_results": False,
}
_Made = TypeVar("_Made")
# What the time spent reading a tier is reported as (the API's backend metric's label).
OPENSEARCH: Final = "opensearch"
ARCHIVE_BACKEND: Final = "archive"
# Told each read of a tier: its backend and the seconds it took, failed or not.
ReadTimer = Callable[[str, float], None]
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NOT_CONFIGURED: Final = (
    "records before {boundary} are kept only in the archive, which this API is not set up to"
    " read (AUDIT_LOG_AWS_S3_BUCKET)"
)
NOT_VISIBLE: Final = (
    "records before {boundary} are kept only in the archive, where this caller's visibility"
    " filter cannot be applied; they were not searched"
)
# Reading the archive costs a scan of every file in the range: only asked-for ranges.
NO_START: Final = (
    "records before {boundary} are kept only in the archive, which is searched when"
    " start_time is given"
)
ARCHIVE_FAILED: Final = (
    "records before {boundary} are kept only in the archive, which could not be read ({error});"
    " they are missing from this answer"
)

UNREADABLE: Final = (
    "{count} archive file(s) of the range cannot be read (damaged, or not an archive file) and"
    " were passed over: records in them are missing from this answer; the API's log names them"
)


@dataclasses.dataclass(frozen=True)
class Detail:
    record: dict[str, Any] | None
    tiers: list[str]
    proof: dict[str, Any] | None = None  # asked for and found: the record's proof


@dataclasses.dataclass(frozen=True)
class Answer:
    count: int
    results: list[dict[str, Any]]
    next: Cursor | None
    tiers: list[str]
    notes: list[str]


def _nanos(timestamp: str) -> int:
    moment = dt.datetime.fromisoformat(timestamp)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def _moment(nanos: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=nanos // 1000)


def _pick(source: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {name: source.get(name) for name in fields}


class TieredReads:
    def __init__(
        self,
        client: AsyncOpenSearch,
        prefix: str,
        *,
        archive: ArchiveSearch | None,
        retention_months: int,
        timeout: float,
        archive_seconds: float = 30.0,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
        on_read: ReadTimer | None = None,
    ) -> None:
        self.client = client
        self.on_read = on_read
        self.prefix = prefix
        self.archive = archive
        self.retention_months = retention_months
        self.timeout = timeout
        self.archive_seconds = archive_seconds
        self.today = today
        self._proofs: RecordProofs | None = None

    @contextlib.contextmanager
    def _timed(self, backend: str) -> Iterator[None]:
        if self.on_read is None:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:  # a slow failure is what an operator most needs to see
            self.on_read(backend, time.perf_counter() - started)

    def boundary(self) -> dt.datetime:
        return retained_since(self.today(), self.retention_months)

    async def _index(self, params: SearchParams, visible: Mapping[str, Any] | None,
                     ) -> tuple[int, list[dict[str, Any]]]:
        with self._timed(OPENSEARCH):
            result = await self.client.search(
                index=search_indices(self.prefix, params),
                body=search_body(params, visible),
                filter_path=SEARCH_FILTER_PATH,
                request_timeout=self.timeout,
                **INDEX_OPTIONS,
            )
        section = result.get("hits", {})
        return section.get("total", {}).get("value", 0), section.get("hits", [])

    async def search(self, params: SearchParams, visible: Mapping[str, Any] | None) -> Answer:
        boundary = self.boundary()
        parts = split(params.record_filter, boundary)
        when = boundary.date().isoformat()
        visible_exact = archive_visibility(visible)
        no_start = params.record_filter.start is None
        notes: list[str] = []
        if parts.archive is None or self.archive is None or visible_exact is None or no_start:
            if parts.archive is not None:
                notice = (NOT_CONFIGURED if self.archive is None
                          else NOT_VISIBLE if visible_exact is None else NO_START)
                notes.append(notice.format(boundary=when))
            count, hits = await self._index(params, visible)
            return self._answer(params, count, [(h["_source"], h["sort"]) for h in hits],
                                [INDEX], notes)
        archive_filter = _narrowed(parts.archive, visible_exact)
        size, offset, cursor = params.page_size, params.offset, params.cursor
        cursor_in_archive = cursor is not None and _moment(cursor.timestamp_ns) < boundary
        rows: list[tuple[dict[str, Any], list[Any]]] = []
        index_count = 0
        if parts.index is not None:
            index_params = dataclasses.replace(params, record_filter=parts.index)
            if cursor_in_archive:  # the index is behind this page: it only counts
                index_params = dataclasses.replace(index_params, cursor=None, from_offset=0,
                                                   page_size=0)
            index_count, hits = await self._index(index_params, visible)
            rows.extend((h["_source"], h["sort"]) for h in hits)
        # Where the archive's part of this page starts: after the index's matches (an
        # offset), below the cursor's record, or at its newest record when the page began
        # in the index.
        archive_offset, after = 0, None
        if cursor is None:
            archive_offset = max(0, offset - index_count)
        elif cursor_in_archive or parts.index is None:
            after = cursor
        tiers = [INDEX] if parts.index is not None else []
        archive_total, archived = 0, list[dict[str, Any]]()
        if archive_filter is not None:
            try:
                page = await self._archive_page(
                    archive_filter, archive_offset, size - len(rows), after)
            except Exception as exc:  # noqa: BLE001 - the index's part is still an answer
                error = describe_error(exc)
                _log.warning("archive search failed: %s", error)
                notes.append(ARCHIVE_FAILED.format(boundary=when, error=error))
            else:
                tiers.append(ARCHIVE)
                archive_total, archived = page.total, page.records
                if page.unreadable:
                    notes.append(UNREADABLE.format(count=len(page.unreadable)))
        rows.extend((r, [_nanos(r["timestamp"]), r["log_id"]]) for r in archived)
        return self._answer(params, index_count + archive_total, rows, tiers, notes)

    async def _archive_page(self, search: RecordFilter, offset: int, size: int,
                            after: Cursor | None) -> Page:
        from audit_logging.archive.search import After

        assert self.archive is not None
        below = None if after is None else After(_moment(after.timestamp_ns), after.log_id)
        with self._timed(ARCHIVE_BACKEND):
            return await asyncio.to_thread(self.archive.page, search, offset=offset,
                                           size=max(0, size), after=below,
                                           columns=SUMMARY_FIELDS, seconds=self.archive_seconds)

    def _answer(self, params: SearchParams, count: int,
                rows: list[tuple[dict[str, Any], list[Any]]], tiers: list[str],
                notes: list[str]) -> Answer:
        results = [_pick(source, SUMMARY_FIELDS) for source, _ in rows]
        after = params.offset + len(results)
        next_cursor = None
        if rows and len(rows) == params.page_size and after < count:
            last_sort = rows[-1][1]
            next_cursor = Cursor(int(last_sort[0]), str(last_sort[1]), after)
        return Answer(count, results, next_cursor, tiers, notes)

    async def detail(self, log_id: str, visible: Mapping[str, Any] | None,
                     fields: Sequence[str], *, proof: bool = False) -> Detail:
        """The record of ``log_id`` (None if no tier has it, or the caller may not see it),
        the tiers looked in, the last being where it was found, and with ``proof`` the
        record's proof (:mod:`audit_logging.archive.proof`), which reads the archive for a
        record the index holds too."""
        with self._timed(OPENSEARCH):
            result = await self.client.search(
                index=index_pattern(self.prefix),
                body=detail_body(log_id, visible),
                filter_path=DETAIL_FILTER_PATH,
                request_timeout=self.timeout,
                **INDEX_OPTIONS,
            )
        hits = result.get("hits", {}).get("hits", [])
        if hits:
            indexed = _pick(hits[0].get("_source", {}), fields)
            if not proof:
                return Detail(indexed, [INDEX])
            made = await self._proof(
                lambda proofs, seconds: proofs.of_indexed(indexed, seconds=seconds))
            return Detail(indexed, [INDEX], _told(log_id, made))
        visible_exact = archive_visibility(visible)
        if self.archive is None or visible_exact is None:
            return Detail(None, [INDEX])
        from audit_logging.archive.store import UnreadableFileError

        record: dict[str, Any] | None
        told: dict[str, Any] | None = None
        try:
            if proof:
                found = await self._proof(lambda proofs, seconds: proofs.of_archived(
                    log_id, seconds=seconds))
                record = None if found is None else found[0]
                told = None if found is None else _told(log_id, found[1])
            else:
                with self._timed(ARCHIVE_BACKEND):
                    record = await asyncio.to_thread(self.archive.find, log_id)
        except ApiError:
            raise
        except UnreadableFileError as exc:  # waiting will not mend it: no Retry-After
            _log.warning("archive detail: %s", exc)
            raise InternalError(
                "An archive file of this record's day cannot be read (damaged, or not an"
                " archive file); the record may be in it"
            ) from None
        except Exception as exc:  # noqa: BLE001 - not found would be a lie: say unavailable
            _log.warning("archive detail failed: %s", describe_error(exc))
            raise UnavailableError(
                "The archive could not be read to look for this record; try again later"
            ) from None
        if record is None or any(record.get(k) != v for k, v in visible_exact.items()):
            return Detail(None, [INDEX, ARCHIVE])
        return Detail(_pick(record, fields), [INDEX, ARCHIVE], told)

    async def _proof(self, make: Callable[[RecordProofs, float], _Made]) -> _Made:
        """``make`` run off the event loop with the archive's proofs, within the archive
        deadline (``archive_seconds``): past it, or when S3 fails, a 503 (an answer without
        the proof asked for would pass for one that has none to give). An archive file that
        cannot be read while the record is looked for in the archive alone raises as
        :meth:`detail` says."""
        from audit_logging.archive.proof import ProofTooLongError, RecordProofs
        from audit_logging.archive.store import UnreadableFileError

        assert self.archive is not None
        if self._proofs is None:
            self._proofs = RecordProofs(self.archive.store)
        proofs, seconds = self._proofs, self.archive_seconds
        try:
            with self._timed(ARCHIVE_BACKEND):
                return await asyncio.wait_for(asyncio.to_thread(make, proofs, seconds), seconds)
        except UnreadableFileError:
            raise
        except (TimeoutError, ProofTooLongError) as exc:
            _log.warning("archive proof passed its deadline of %gs: %s", seconds,
                         describe_error(exc))
            raise UnavailableError(
                f"The proof could not be made within the archive's deadline ({seconds:g} s);"
                " try again later"
            ) from None
        except Exception as exc:  # noqa: BLE001 - no proof is no answer to this request
            _log.warning("archive proof failed: %s", describe_error(exc))
            raise UnavailableError(
                "The archive could not be read to make this record's proof; try again later"
            ) from None


def _told(log_id: str, proof: Proof) -> dict[str, Any]:
    """``proof`` as the answer holds it; what an auditor must see, the operators' log says
    too."""
    if proof.status in ("mismatch", "unreadable"):
        _log.warning("archive proof of %s: %s: %s", log_id, proof.status,
                     shown(proof.explanation, 1000))
    return proof.as_json()


def _narrowed(search: RecordFilter, visible: dict[str, str]) -> RecordFilter | None:
    """``search`` with the caller's visibility added; None if they contradict (nothing in
    the archive can match both)."""
    exact = dict(search.exact)
    for name, value in visible.items():
        if exact.get(name, value) != value:
            return None
        exact[name] = value
    return dataclasses.replace(search, exact=exact)
