"""``verify``: do the search index and the archive hold the same records? Day by day: log_ids
missing in the index, missing in the archive, archived twice, and what the archive's file
names prove about the stream's offsets (:mod:`.verify` and :mod:`.offsets` say exactly what is
and is not checked), and archive files that cannot be read (each named, the others checked).
``--repair`` indexes what the index misses from the readable files, as ``reindex`` would.

Exit 0 when the tiers agree (with ``--repair``: once repaired), 1 when differences are found
(or left) or a file could not be read, 2 for bad usage, 3 when a service fails.

``--integrity`` is another check altogether (:mod:`.integrity_command`): the archive against
its own signed digests, without the index.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Sequence
from typing import Any, Final

from audit_logging.archive import integrity_command
from audit_logging.archive.cli import (
    EXIT_DIFFERENCES,
    EXIT_OK,
    add_index_prefix,
    add_range,
    days_of,
    index_prefix,
    record_filter,
)
from audit_logging.archive.progress import Progress
from audit_logging.archive.reindex import Tally, archive_indexer
from audit_logging.archive.report import table
from audit_logging.archive.store import ArchiveStore, UnreadableFileError
from audit_logging.archive.verify import SAMPLE, DayCheck, Found, Verifier
from audit_logging.search_index import first_retained_day, install_template, make_client
from audit_logging.settings import Settings

_BULK_BYTES: Final = 8 * 1024 * 1024
_KINDS: Final = (
    ("missing_in_index", "missing in index"),
    ("missing_in_archive", "missing in archive"),
    ("duplicates", "duplicates"),
    ("offset_problems", "offset problems"),
)
UNREADABLE: Final = "unreadable_files"
_UNREADABLE_LABEL: Final = "unreadable files"


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "verify",
        help="check that the search index and the archive hold the same records (with "
        "--integrity: that the archive is unaltered and complete)",
        description="Compare the archive's log_ids with the index's for each UTC day of the "
        "range (the index only where it keeps the month), find log_ids archived twice, "
        "offsets claimed twice and archive files that cannot be read. Exit 0 when they agree, "
        "1 when they differ. With --integrity, check the archive against its signed digests "
        "instead (no index, no range needed): exit 0 when no problem is found, 1 when some "
        "are (each listed with its kind and object key), 3 when S3 or RabbitMQ fails.",
    )
    add_range(parser, required=False)  # required but with --integrity: see check_usage
    add_index_prefix(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON document (for machines)")
    parser.add_argument("--repair", action="store_true",
                        help="index the archived records the index misses (write-once, as "
                        "reindex does), and report them")
    integrity_command.add_options(parser)
    parser.set_defaults(run=run)


@dataclasses.dataclass(frozen=True)
class _Run:
    first: dt.date
    last: dt.date
    prefix: str
    archive: str
    index_from: dt.date
    repair: bool
    seconds: float


def run(args: argparse.Namespace, settings: Settings) -> int:
    integrity_command.check_usage(args)
    if args.integrity:
        return integrity_command.run(args, settings)
    first, last = days_of(record_filter(args, settings))
    prefix = index_prefix(args, settings)
    # Files are read once each (a repair reads its day's again): none kept in memory.
    store = ArchiveStore(settings, cache_bytes=0)
    today = dt.datetime.now(dt.UTC).date()
    index_from = first_retained_day(settings.retention_months, today)
    client = make_client(settings, timeout=60, max_retries=0)
    stop = threading.Event()
    progress = Progress("verify", days=(last - first).days + 1)
    try:
        repair = None
        if args.repair:
            install_template(client, prefix)
            repair = archive_indexer(client, prefix, stop, bulk_bytes=_BULK_BYTES)
        verifier = Verifier(store, client, prefix, index_from=index_from, repair=repair)
        checks = verifier.check(
            first, last, on_day=lambda c: progress.add(records=c.archived, days=1)
        )
    finally:
        stop.set()
        progress.finish()
        client.close()
    done = _Run(first, last, prefix, f"s3://{store.bucket}/{store.prefix}", index_from,
                args.repair, progress.elapsed())
    if args.json:
        print(json.dumps(as_json(checks, done), indent=2, ensure_ascii=False))
    else:
        _print_report(checks, done, verifier)
    return EXIT_DIFFERENCES if any(c.differs_still for c in checks) else EXIT_OK


def _found(found: Found) -> dict[str, Any]:
    return {"count": found.count, "sample": list(found.sample)}


def _unreadable(unreadable: Sequence[UnreadableFileError]) -> dict[str, Any]:
    # The key as S3 has it (JSON escapes it); the reason is one bounded line already.
    return {"count": len(unreadable),
            "sample": [{"key": u.key, "reason": u.reason} for u in unreadable[:SAMPLE]]}


def _tally(tally: Tally | None) -> dict[str, int] | None:
    if tally is None:
        return None
    return {"indexed": tally.indexed, "already_there": tally.present, "refused": tally.refused}


def _repaired(checks: Sequence[DayCheck]) -> Tally:
    total = Tally()
    for check in checks:
        if check.repaired is not None:
            total.add(check.repaired)
    return total


def as_json(checks: Sequence[DayCheck], done: _Run) -> dict[str, Any]:
    """The result for machines: every day of the range, each with the same keys."""
    days = []
    for check in checks:
        day: dict[str, Any] = {
            "day": check.day.isoformat(),
            "files": check.files,
            "archived": check.archived,
            "indexed": check.indexed,
            "index_checked": check.index_checked,
        }
        day.update({name: _found(getattr(check, name)) for name, _ in _KINDS})
        day[UNREADABLE] = _unreadable(check.unreadable)
        day["repaired"] = _tally(check.repaired)
        day["agree"] = not check.differs_still
        days.append(day)
    totals: dict[str, Any] = {
        "files": sum(c.files for c in checks),
        "archived": sum(c.archived for c in checks),
        "indexed": sum(c.indexed or 0 for c in checks),
        **{name: sum(getattr(c, name).count for c in checks) for name, _ in _KINDS},
        UNREADABLE: sum(len(c.unreadable) for c in checks),
        "repaired": _tally(_repaired(checks)) if done.repair else None,
    }
    return {
        "since": done.first.isoformat(),
        "until": done.last.isoformat(),
        "index_prefix": done.prefix,
        "archive": done.archive,
        "index_checked_from": done.index_from.isoformat(),
        "agree": not any(c.differs_still for c in checks),
        "days": days,
        "totals": totals,
        "seconds": round(done.seconds, 3),
    }


def _print_report(checks: Sequence[DayCheck], done: _Run, verifier: Verifier) -> None:
    differing = [c for c in checks if c.differs]
    totals = as_json(checks, done)["totals"]
    if differing:
        header = ["day", "files", "archived", "indexed", *(label for _, label in _KINDS),
                  _UNREADABLE_LABEL]
        rows: list[list[object]] = [
            [c.day.isoformat(), c.files, c.archived, c.indexed,
             *(getattr(c, name).count for name, _ in _KINDS), len(c.unreadable)]
            for c in differing
        ]
        rows.append(["total", totals["files"], totals["archived"], totals["indexed"],
                     *(totals[name] for name, _ in _KINDS), totals[UNREADABLE]])
        print(table(header, rows))
        for check in differing:
            for name, label in _KINDS:
                found: Found = getattr(check, name)
                if found.count:
                    more = found.count - len(found.sample)
                    tail = f" (and {more:,} more)" if more > 0 else ""
                    print(f"{check.day} {label}: {'; '.join(found.sample)}{tail}")
            _print_unreadable(check)
    if totals[UNREADABLE]:
        print(f"verify: {totals[UNREADABLE]:,} archive file(s) could not be read (damaged, or "
              "not archive files): their records are neither counted nor compared (one the "
              "index holds shows as missing in the archive) and --repair does not read them; "
              "restore them from a copy, or remove them if they are not archive files")
    rate = totals["archived"] / done.seconds if done.seconds > 0 else 0.0
    print(f"verify: {len(checks)} days from {done.first} to {done.last}: {totals['archived']:,} "
          f"archived records in {totals['files']:,} files of {done.archive}, "
          f"{totals['indexed']:,} in {done.prefix}-* (days from {done.index_from} on; earlier "
          f"ones are kept in the archive alone); {done.seconds:.1f} s ({rate:,.0f} records/s)")
    if done.repair:
        repaired = _repaired(checks)
        print(f"verify: repaired: {repaired.indexed:,} records indexed, {repaired.present:,} "
              f"already there, {repaired.refused:,} refused by the index")
        for text in verifier.notes.refused:
            print(f"verify: refused: {text}")
    left = [c for c in checks if c.differs_still]
    if not differing:
        print("verify: the index and the archive agree")
    elif not left:
        print("verify: the index and the archive agree after the repair")
    else:
        print(f"verify: differences on {len(left)} of {len(checks)} days")


def _print_unreadable(check: DayCheck) -> None:
    """A line per file (its key escaped and bounded, the reason one line), at most
    :data:`~.verify.SAMPLE` of a day."""
    for unreadable in check.unreadable[:SAMPLE]:
        print(f"{check.day} unreadable file: {unreadable}")
    more = len(check.unreadable) - SAMPLE
    if more > 0:
        print(f"{check.day} unreadable files: and {more:,} more")
