"""The report of ``verify --integrity``: a table of streams, each problem on a line of its own
(kind, object key, what is wrong), warnings, a closing line; or one JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from audit_logging.archive.integrity import KINDS, SAMPLE, Problem, key_text
from audit_logging.archive.integrity_check import Report, StreamResult
from audit_logging.archive.report import table
from audit_logging.errors import shown

# Lines of one kind printed (the JSON has them all).
LINES_PER_KIND: Final = 50
VERB: Final = "verify --integrity"


def _iso(report: Report) -> tuple[str | None, str | None]:
    start, end = report.window.start, report.window.end
    return (None if start is None else start.isoformat(),
            None if end is None else end.isoformat())


def as_json(report: Report) -> dict[str, Any]:
    since, before = _iso(report)
    counts: dict[str, int] = {}
    for problem in report.problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    return {
        "archive": report.archive,
        "since": since,
        "before": before,
        "reference": report.reference_name,
        "pinned_keys": report.pinned,
        "intact": report.intact,
        "streams": [_stream_json(s) for s in report.streams],
        "problem_counts": counts,
        "problems": [_problem_json(p) for p in report.problems],
        "warnings": report.warnings,
        "bytes_checked": report.bytes_checked,
        "seconds": round(report.seconds, 3),
    }


def _stream_json(result: StreamResult) -> dict[str, Any]:
    return {
        "stream": result.stream,
        "digests": result.digests,
        "first_offset": result.first_offset,
        "last_offset": result.last_offset,
        "reference_offset": result.reference,
        "in_rabbitmq": result.in_rabbitmq,
        "objects_listed": result.objects_listed,
        "objects_checked": result.objects_checked,
        "bytes_checked": result.bytes_checked,
        "unsigned_digests": result.unsigned,
        "key_ids": result.key_ids,
        "pending": {"count": len(result.pending), "sample": result.pending[:SAMPLE]},
        "before_chain": {"count": len(result.before_chain),
                         "sample": result.before_chain[:SAMPLE]},
    }


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"kind": problem.kind, "key": problem.key, "stream": problem.stream,
            "detail": problem.detail, "objects": problem.objects}


def text(report: Report) -> str:
    lines = [table(
        ["stream", "digests", "first offset", "last offset", "stored reference", "objects",
         "MB read", "pending", "problems"],
        [[shown(s.stream, 100), s.digests, s.first_offset, s.last_offset, s.reference,
          s.objects_checked, f"{s.bytes_checked / 1e6:,.1f}", len(s.pending),
          sum(1 for p in report.problems if p.stream == s.stream)]
         for s in report.streams],
    )]
    lines += _problem_lines(report.problems)
    for result in report.streams:
        if result.pending:
            sample = ", ".join(key_text(k) for k in result.pending[:SAMPLE])
            lines.append(f"{VERB}: stream {shown(result.stream, 100)}: {len(result.pending):,} "
                         f"object(s) after the chain's last offset, pending its next digest "
                         f"(not checked): {sample}")
        if result.before_chain:
            sample = ", ".join(key_text(k) for k in result.before_chain[:SAMPLE])
            lines.append(f"{VERB}: stream {shown(result.stream, 100)}: "
                         f"{len(result.before_chain):,} object(s) below the offsets of the "
                         f"chain's first digest, archived before the consumer wrote digests "
                         f"(not covered): {sample}")
    lines += [f"{VERB}: warning: {warning}" for warning in report.warnings]
    seconds = max(report.seconds, 1e-9)
    objects = sum(s.objects_checked for s in report.streams)
    megabytes = report.bytes_checked / 1e6
    lines.append(
        f"{VERB}: {len(report.streams)} stream(s) of {report.archive}: "
        f"{sum(s.digests for s in report.streams):,} digests, {objects:,} objects "
        f"({megabytes:,.1f} MB) read and hashed in {report.seconds:.1f} s "
        f"({megabytes / seconds:,.1f} MB/s)")
    if report.intact:
        lines.append(f"{VERB}: no problem found: every object listed is unaltered and the "
                     "chains are complete up to the stored references")
    else:
        counts = _counts(report.problems)
        lines.append(f"{VERB}: {len(report.problems):,} problem(s): "
                     + ", ".join(f"{kind} {count:,}" for kind, count in counts.items()))
    return "\n".join(lines)


def _counts(problems: Sequence[Problem]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for problem in problems:
        counts[problem.kind] += 1
    return {kind: count for kind, count in counts.items() if count}


def _problem_lines(problems: Sequence[Problem]) -> list[str]:
    lines = []
    for kind, count in _counts(problems).items():
        of_kind = [p for p in problems if p.kind == kind]
        lines += [problem.text() for problem in of_kind[:LINES_PER_KIND]]
        if count > LINES_PER_KIND:
            lines.append(f"{kind}: and {count - LINES_PER_KIND:,} more (--json lists them all)")
    return lines
