"""The human screen of status: one aligned section per part, and a last line that says
"healthy" or "UNHEALTHY: <reasons>"."""

from __future__ import annotations

from collections.abc import Sequence

from audit_logging.status.figures import (
    PARTS,
    Archive,
    Broker,
    Index,
    Readiness,
    S3Object,
    Spool,
    Status,
    iso,
    waited,
)

LAG_NOTE = ("lag: offsets behind the newest record, the group's offset-tracking entries "
            "included (an upper bound in records; 0 when caught up)")


def render(status: Status) -> str:
    now = status.checked_at
    sections: list[list[str]] = []
    if status.broker is not None:
        sections += [_streams(status.broker, now),
                     _consumers(status.broker, now, status.stale_after)]
    # Without --only, the section also says how to ask a consumer; with it, only what was
    # asked for is shown.
    if status.readiness or status.checked == list(PARTS):
        sections.append(_readiness(status.readiness))
    if status.archive is not None:
        sections.append(_archive(status.archive, now))
    if status.index is not None:
        sections.append(_index(status.index))
    if status.spool is not None:
        sections.append(_spool(status.spool))
    skipped = [part for part in PARTS if part not in status.checked]
    if skipped:
        sections.append([f"not checked (--only): {', '.join(skipped)}"])
    lines = [f"audit_logging status at {iso(now)}"]
    for section in sections:
        lines += ["", *section]
    lines += ["", verdict(status)]
    return "\n".join(lines)


def verdict(status: Status) -> str:
    if status.healthy:
        return "healthy"
    return "UNHEALTHY: " + "; ".join(status.problems)


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """``rows`` in columns as wide as their widest cell (the first row is the heading)."""
    widths = [max(len(row[i]) for row in rows if i < len(row))
              for i in range(max(len(row) for row in rows))]
    return [(indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))).rstrip()
            for row in rows]


def _ago(moment: float | None, now: float) -> str:
    if moment is None:
        return "-"
    return f"{iso(moment)} ({_duration(max(0.0, now - moment))} ago)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _streams(broker: Broker, now: float) -> list[str]:
    lines = ["Streams (RabbitMQ)"]
    if broker.error is not None:
        lines.append(f"  unreachable: {broker.error}")
    if not broker.streams:
        return lines
    rows = [["stream", "newest record", "written"]]
    for end in broker.streams:
        if not end.exists:
            rows.append([end.stream, "missing", "-"])
        else:
            offset = "(empty)" if end.end_offset is None else f"offset {end.end_offset:,}"
            rows.append([end.stream, offset, _ago(end.end_time, now)])
    return lines + table(rows)


def _consumers(broker: Broker, now: float, stale_after: float) -> list[str]:
    lines = ["Consumers"]
    rows = [["name", "stream", "stored offset", "lag", "oldest unprocessed record"]]
    for consumer in broker.consumers:
        for item in consumer.streams:
            wait = waited(item, now)
            oldest = "-" if wait is None else (
                f"offset {item.oldest_waiting_offset:,}, waiting {_duration(wait)}"
                + (" STALE" if wait > stale_after else ""))
            stored = "none" if item.stored_offset is None else f"{item.stored_offset:,}"
            rows.append([consumer.name, item.stream, stored, _number(item.lag), oldest])
    if len(rows) == 1:
        return [*lines, "  (not read: RabbitMQ did not answer)"]
    lines += table(rows)
    lines.append(f"  {LAG_NOTE}; stale when the oldest unprocessed record waits more than "
                 f"{stale_after:g} s")
    return lines


def _readiness(readiness: Sequence[Readiness]) -> list[str]:
    lines = ["Consumer processes (/readyz)"]
    if not readiness:
        return [*lines, "  (none given: --consumer-url URL)"]
    rows = [["url", "readiness", "dependencies", "partitions"]]
    for answer in readiness:
        if answer.error is not None and answer.ready is None:
            state = "UNREACHABLE" if not answer.reachable else "BAD ANSWER"
        else:
            state = "ready" if answer.ready else "NOT READY"
        dependencies = ", ".join(f"{name} {'ok' if ok else 'DOWN'}"
                                 for name, ok in answer.dependencies.items()) or "-"
        partitions = ", ".join(f"{name} {role}" for name, role in answer.partitions.items())
        rows.append([answer.url, state, dependencies, partitions or "-"])
    lines += table(rows)
    for answer in readiness:
        lines += [f"  {answer.url}: {text}"
                  for text in ([answer.error] if answer.error else []) + answer.problems]
    return lines


def _object(item: S3Object | None, prefix: str, now: float) -> str:
    if item is None:
        return "none"
    return f"{item.key.removeprefix(prefix)}  {_ago(item.time, now)}  {_size(item.size)}"


def _archive(archive: Archive, now: float) -> list[str]:
    lines = [f"Archive (s3://{archive.bucket}/{archive.prefix})"]
    if archive.error is not None:
        lines.append(f"  unreachable: {archive.error}")
    if not archive.reachable:
        return lines
    letters = archive.dead_letters
    count = f"{letters.objects:,}" + ("" if letters.complete else "+")
    prefix = archive.prefix
    rows = [["newest object", _object(archive.newest_object, prefix, now)]]
    for digest in archive.digests:
        text = "none" if digest.key is None else (
            f"{digest.key.removeprefix(prefix)}  {_ago(digest.time, now)}  covers offsets to "
            f"{digest.last_offset:,}")
        rows.append([f"newest digest of {digest.stream}", text])
    rows.append(["dead letters, last day",
                 f"{count} {'file' if letters.objects == 1 else 'files'}, "
                 f"{_size(letters.bytes)}"
                 + ("" if letters.newest is None else
                    f"; newest {letters.newest.key.removeprefix(prefix)}  "
                    f"{_ago(letters.newest.time, now)}")])
    return [*lines, "  (keys below the prefix)", *table(rows)]


def _index(index: Index) -> list[str]:
    lines = [f"Index (OpenSearch {index.prefix}-YYYY.MM)"]
    if index.error is not None:
        return [*lines, f"  unreachable: {index.error}"]
    if not index.indices:
        return [*lines, "  no monthly index"]
    rows = [["index", "documents", "health"]]
    rows += [[item.index, _number(item.documents), item.health or "-"] for item in index.indices]
    return lines + table(rows)


def _spool(spool: Spool) -> list[str]:
    lines = [f"Local spool ({spool.path})"]
    if not spool.exists:
        return [*lines, "  no spool folder on this host"]
    if spool.error is not None:
        lines.append(f"  unreadable: {spool.error}")
    lines.append(f"  {spool.records:,} records, {_size(spool.bytes)} waiting for the broker "
                 f"in {len(spool.folders)} folders")
    return lines
