"""``reindex``: rebuild the search index's monthly indices from the archive, for whole UTC
days; write-once (a record already in the index is counted, never overwritten) and resumable
(a run killed midway skips, when started again, the archive files it had finished).

An archive file that cannot be read (damaged, or not an archive file) is named on standard
error and counted per day; every other file is indexed, and the run exits 1. Such a file is
never recorded as finished, so running the same reindex again reads it again: once it is
restored, its records go in; until then, it is named again.

Days before the oldest month the index keeps (AUDIT_LOG_RETENTION_MONTHS) are skipped: the
consumer's retention would delete their indices again, and the search API and ``export``
read them from the archive anyway.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audit_logging.archive.checkpoint import Checkpoint, CheckpointBusyError, default_state_dir
from audit_logging.archive.cli import (
    EXIT_DIFFERENCES,
    EXIT_OK,
    UsageError,
    add_index_prefix,
    add_range,
    bounded,
    days_of,
    index_prefix,
    record_filter,
)
from audit_logging.archive.progress import Progress
from audit_logging.archive.reindex import Reindexer, Tally, month_index
from audit_logging.archive.report import table
from audit_logging.archive.store import ArchiveStore
from audit_logging.errors import describe_error
from audit_logging.search_index import first_retained_day, install_template, make_client
from audit_logging.settings import Settings

_MIB = 1024 * 1024
SENDERS = 2  # bulk requests in flight: OpenSearch's own threads do the indexing


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "reindex",
        help="rebuild the search index from the archive",
        description="Index the archived records of whole UTC days into the monthly indices, "
        "write-once: records the index holds already are counted and kept as they are. A run "
        "that was interrupted resumes where it stopped.",
    )
    add_range(parser)
    add_index_prefix(parser)
    parser.add_argument("--state-dir", metavar="DIR",
                        help="where a run keeps the archive files it finished, to resume "
                        "after an interruption (default: $XDG_STATE_HOME/audit_logging/reindex, "
                        "~/.local/state/...)")
    parser.add_argument("--readers", type=int, default=4, metavar="N",
                        help="archive files read from S3 at once (1 to 32; default 4)")
    parser.add_argument("--bulk-mib", type=int, default=8, metavar="MIB",
                        help="largest bulk request to OpenSearch, in MiB (1 to 100; default 8)")
    parser.set_defaults(run=run)


def state_dir(given: str | None) -> Path:
    path = Path(given) if given is not None else default_state_dir()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--state-dir {path} is not a directory")
    return path


def run(args: argparse.Namespace, settings: Settings) -> int:
    first, last = days_of(record_filter(args, settings))
    prefix = index_prefix(args, settings)
    readers = bounded(args.readers, "--readers", 1, 32)
    bulk_bytes = bounded(args.bulk_mib, "--bulk-mib", 1, 100) * _MIB
    directory = state_dir(args.state_dir)
    store = ArchiveStore(settings, cache_bytes=0)  # each file is read once: none kept
    today = dt.datetime.now(dt.UTC).date()
    kept_from = first_retained_day(settings.retention_months, today)
    if first < kept_from:
        skipped_to = min(last, kept_from - dt.timedelta(days=1))
        print(f"reindex: skipping {first} to {skipped_to}: the index keeps "
              f"{settings.retention_months} months (AUDIT_LOG_RETENTION_MONTHS), from "
              f"{month_index(prefix, kept_from)} on; the consumer's retention would delete older "
              "indices again (the search API and export read those days from the archive)",
              file=sys.stderr)
        first = kept_from
    if first > last:
        print("reindex: nothing to do", file=sys.stderr)
        return EXIT_OK
    checkpoint = Checkpoint(directory, {
        "opensearch": f"{settings.opensearch_host}:{settings.opensearch_port}",
        "index_prefix": prefix,
        "bucket": store.bucket,
        "s3_prefix": store.prefix,
    })
    try:
        checkpoint.open()
    except CheckpointBusyError as exc:
        raise UsageError(f"--state-dir: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--state-dir {directory}: {describe_error(exc)}") from None
    client = make_client(settings, timeout=60, max_retries=0, pool_maxsize=SENDERS + 2)
    progress = Progress("reindex", days=0)
    try:
        install_template(client, prefix)
        files = store.files(first, last)
        progress.days = len({f.day for f in files})
        reindexer = Reindexer(store, client, prefix, checkpoint, readers=readers,
                              senders=SENDERS, bulk_bytes=bulk_bytes,
                              on_progress=_adder(progress))
        days = reindexer.run(files)
        checkpoint.complete(first, last)
    finally:
        progress.finish()
        checkpoint.close()
        client.close()
    total = _report(days, prefix, progress.records, progress.elapsed())
    _notes(total, reindexer, checkpoint)
    return EXIT_DIFFERENCES if total.refused or total.unreadable else EXIT_OK


def _adder(progress: Progress) -> Any:
    def add(records: int, days: int) -> None:
        progress.add(records=records, days=days)
    return add


def _report(days: Mapping[dt.date, Tally], prefix: str, sent: int, elapsed: float) -> Tally:
    total = Tally()
    rows: list[list[object]] = []
    for day, tally in days.items():
        total.add(tally)
        rows.append([day.isoformat(), tally.files, tally.records, tally.indexed, tally.present,
                     tally.refused, tally.unreadable])
    rows.append(["total", total.files, total.records, total.indexed, total.present,
                 total.refused, total.unreadable])
    header = ["day", "files", "records", "indexed", "already there", "refused", "unreadable"]
    print(table(header, rows))
    rate = sent / elapsed if elapsed > 0 else 0.0
    unreadable = f", {total.unreadable:,} unreadable files passed over" if total.unreadable else ""
    print(f"reindex: {total.records:,} records of {total.files:,} archive files over "
          f"{len(days)} days into {prefix}-*: {total.indexed:,} indexed, {total.present:,} "
          f"already there, {total.refused:,} refused{unreadable}; {sent:,} records sent in "
          f"{elapsed:.1f} s ({rate:,.0f} records/s)")
    return total


def _notes(total: Tally, reindexer: Reindexer, checkpoint: Checkpoint) -> None:
    if total.resumed_files:
        print(f"reindex: {total.resumed_files:,} archive files were finished by an earlier, "
              f"interrupted run and skipped (its state: {checkpoint.path})", file=sys.stderr)
    if total.differing:
        print(f"reindex: {total.differing:,} records the index holds differ from the archive's; "
              "the index's copy was kept (log_ids are write-once): "
              + "; ".join(reindexer.notes.differing), file=sys.stderr)
    if total.refused:
        print(f"reindex: the index refused {total.refused:,} records: "
              + "; ".join(reindexer.notes.refused), file=sys.stderr)
    if reindexer.unreadable:
        # Every one named, as export does: each is a file to restore (or to remove).
        for unreadable in reindexer.unreadable:
            print(f"reindex: passed over: {unreadable}", file=sys.stderr)
        print(f"reindex: {len(reindexer.unreadable):,} archive file(s) could not be read "
              "(damaged, or not archive files); records in them are not indexed. They are not "
              "recorded as finished: running the same reindex again reads them again",
              file=sys.stderr)
