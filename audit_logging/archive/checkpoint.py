"""What an interrupted ``reindex`` had finished, so that running it again skips that work.

One small file per target and source, ``reindex-{index prefix}-{hash}.jsonl`` in the state
directory, the hash naming the OpenSearch cluster, the index prefix, the bucket and the
archive's key prefix (the first line spells them out). Each following line is one archive
file whose records are all in the index: its key and size, its row count, the uuid of the
monthly index they went into, and what became of them (indexed, already there, refused), so
a resumed run reports the same totals as one that was never interrupted.

Why this is enough to skip a file:

* archive files are written once and never change, so a key and a size name one content;
* a line is written only after OpenSearch acknowledged every record of the file;
* an index deleted since (by hand, or by retention) and made again has another uuid: the
  line then no longer counts, and the file is indexed again.

An archive file that cannot be read (damaged, not an archive file) gets no line: a resumed
run, like any other, reads it again and names it again, so it is never hidden as done.

A line is appended with a single ``write`` on a file opened for appending, then synced to
disk; a kill can leave at most a last, partial line, which reading ignores. The file is
locked while a run uses it, so two runs of the same reindex cannot both write it; a run that
completes removes the lines of its range (the file itself once empty). Progress is never kept
in OpenSearch: an index matching ``{prefix}-*`` would show up in searches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from audit_logging.archive.layout import ArchiveFile, parse_key
from audit_logging.errors import AuditLoggingError

# Counts kept for each finished file (reindex's Tally fields).
COUNTS: Final = ("records", "indexed", "present", "differing", "refused")
_MAX_LINE: Final = 64 * 1024  # a key is at most 1 KiB: anything longer is not ours


class CheckpointBusyError(AuditLoggingError):
    """Another run holds the checkpoint: the same reindex is running already."""


@dataclasses.dataclass(frozen=True)
class Finished:
    """One archive file a run finished: where its records went and what became of them."""

    key: str
    size: int
    index_uuid: str
    counts: Mapping[str, int]


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "audit_logging" / "reindex"


class Checkpoint:
    def __init__(self, directory: Path, identity: Mapping[str, str]) -> None:
        self.identity = dict(identity)
        text = json.dumps(self.identity, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        self.path = directory / f"reindex-{identity.get('index_prefix', 'index')}-{digest}.jsonl"
        self._header = text
        self._finished: dict[tuple[str, int], Finished] = {}
        self._fd: int | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Lock the file (made if missing) and read what earlier runs finished; raises
        :class:`CheckpointBusyError` when another run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointBusyError(
                f"another reindex into the same indices from the same archive is running "
                f"(it holds {self.path})"
            ) from None
        self._fd = fd
        with open(self.path, "rb") as existing:
            data = existing.read()
        lines = data.split(b"\n")
        if lines[0] != self._header.encode("utf-8"):
            # New, or not ours (a partial header): start it again.
            os.ftruncate(fd, 0)
            self._append(self._header)
            return
        # The last is empty, or a line a kill cut short: cut it off before appending after it.
        os.ftruncate(fd, len(data) - len(lines[-1]))
        for line in lines[1:-1]:
            entry = _parse(line)
            if entry is not None:
                self._finished[(entry.key, entry.size)] = entry

    def finished(self, file: ArchiveFile, index_uuid: str | None) -> Finished | None:
        """What an earlier run recorded for ``file``, if its index is still the same one."""
        found = self._finished.get((file.key, file.size))
        if found is None or index_uuid is None or found.index_uuid != index_uuid:
            return None
        return found

    def mark(self, file: ArchiveFile, index_uuid: str, counts: Mapping[str, int]) -> None:
        entry = Finished(file.key, file.size, index_uuid, {n: counts[n] for n in COUNTS})
        with self._lock:
            if self._fd is None:
                return  # closed: the run is over
            self._append(_line_of(entry))
            self._finished[(entry.key, entry.size)] = entry

    def complete(self, first: dt.date, last: dt.date) -> None:
        """The range is done: forget its files (a later run checks them afresh) and remove
        the file when nothing else is left in it."""
        with self._lock:
            kept = {
                k: f for k, f in self._finished.items() if not first <= self._day(f.key) <= last
            }
            self._finished = kept
            if not kept:
                self.path.unlink(missing_ok=True)
                return
            partial = self.path.with_name(self.path.name + ".partial")
            lines = [self._header] + [_line_of(f) for f in kept.values()]
            partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            os.replace(partial, self.path)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)  # releases the lock
                self._fd = None

    def _day(self, key: str) -> dt.date:
        file = parse_key(self.identity.get("s3_prefix", ""), key)
        return file.day if file is not None else dt.date.min

    def _append(self, line: str) -> None:
        assert self._fd is not None
        os.write(self._fd, (line + "\n").encode("utf-8"))
        os.fsync(self._fd)


def _line_of(entry: Finished) -> str:
    return json.dumps(
        {"key": entry.key, "size": entry.size, "index_uuid": entry.index_uuid, **entry.counts},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _parse(line: bytes) -> Finished | None:
    if not line or len(line) > _MAX_LINE:
        return None
    try:
        data: Any = json.loads(line)
        counts = {name: int(data[name]) for name in COUNTS}
        return Finished(str(data["key"]), int(data["size"]), str(data["index_uuid"]), counts)
    except (ValueError, KeyError, TypeError):
        return None
