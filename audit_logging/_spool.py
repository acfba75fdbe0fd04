"""The local durable spool: records waiting for the broker, in publishing order, on disk.

Each process owns one spool folder under ``AUDIT_LOG_SPOOL_DIR``, held with an exclusive
``flock`` for the process's life; the folder's name is also the producer name its records
are published under, so a replay after a crash is deduplicated by the broker. A folder whose
lock nobody holds belongs to a process that is gone: the next process adopts and replays it.

Files: ``seg-NNNNNNNN.log`` segments of ``<publishing id>\\t<record JSON>\\n`` lines (record
JSON never holds a raw newline), ``commit.pos`` with the position up to which the broker
confirmed everything, ``overflow.log`` with records written by the app's threads when the
in-memory queue was full (they get their publishing ids when the publisher moves them into
the segments), and ``lock``.

Records hold IP addresses, user agents and session hashes: folders are 0700 and files 0600
whatever the umask, and an adopted folder is tightened to that too.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path
from typing import Final

SEGMENT_BYTES: Final = 64 * 1024 * 1024
_LOCK: Final = "lock"
_COMMIT: Final = "commit.pos"
_NAME: Final = "producer"
_OVERFLOW: Final = "overflow.log"


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class SpooledRecord:
    publishing_id: int
    body: bytes
    end: Position


class Spool:
    """A spool folder this process holds the lock of; thread-safe."""

    def __init__(self, path: Path, lock_fd: int, producer_name: str) -> None:
        self.path = path
        self.producer_name = producer_name
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()
        self._closed = False
        segments = self._segments()
        self._write_segment = segments[-1] if segments else 1
        self._writer = _open_append(self._segment_path(self._write_segment))
        self._dirty = False
        self._committed = self._read_commit()
        self._cursor = self._committed
        self._unsent = self._count_lines_after(self._committed)
        self._overflow_mutex = threading.Lock()
        self._overflow_writer = _open_append(path / _OVERFLOW)
        if self._overflow_writer.tell() and not _ends_a_line(path / _OVERFLOW):
            # Torn by a crash: end the fragment, or the next record would be glued to it.
            self._overflow_writer.write(b"\n")
            self._overflow_writer.flush()
        self._overflow_count = self._overflow_writer.tell() and _count_lines(path / _OVERFLOW)

    # -- creating and adopting ------------------------------------------------------------

    @classmethod
    def create(cls, root: Path) -> Spool:
        """A new, empty spool folder for this process."""
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(root, 0o700)  # ours: private whatever the umask (an existing one is left)
        spool_id = uuid.uuid4().hex[:16]
        host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40]
        name = f"audit-{host}-{spool_id}"
        # Made under a temporary name and renamed once locked, so another process scanning
        # for orphans never mistakes a folder being born for one whose owner died.
        tmp = root / f".tmp-{spool_id}"
        tmp.mkdir(mode=0o700)
        os.chmod(tmp, 0o700)
        fd = _lock(tmp / _LOCK)
        if fd is None:  # pragma: no cover - a fresh random folder cannot be locked by another
            raise OSError(f"cannot lock the new spool folder {tmp}")
        _write_private(tmp / _NAME, name.encode("utf-8"))
        final = root / name
        tmp.rename(final)
        return cls(final, fd, name)

    @classmethod
    def adopt_orphans(cls, root: Path) -> list[Spool]:
        """Spool folders left by processes that are gone, now locked by this one."""
        if not root.is_dir():
            return []
        adopted: list[Spool] = []
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / _NAME).is_file():
                continue
            fd = _lock(folder / _LOCK)
            if fd is None:
                continue  # a live process holds it
            _tighten(folder)
            name = (folder / _NAME).read_text(encoding="utf-8").strip()
            adopted.append(cls(folder, fd, name))
        return adopted

    @staticmethod
    def pending_on_disk(path: Path) -> int:
        """Records in the folder at ``path`` that the broker has not confirmed, counted in
        its files (segment lines after the commit position, and overflow lines)."""
        if not path.is_dir():
            return 0
        reader = Spool.__new__(Spool)
        reader.path = path
        count = reader._count_lines_after(reader._read_commit())
        overflow = path / _OVERFLOW
        return count + (_count_lines(overflow) if overflow.is_file() else 0)

    @staticmethod
    def pending_bytes_on_disk(path: Path) -> int:
        """Bytes of the records :meth:`pending_on_disk` counts (with their publishing ids
        and line ends), from the files' sizes: nothing is read but the commit position."""
        if not path.is_dir():
            return 0
        reader = Spool.__new__(Spool)
        reader.path = path
        start = reader._read_commit()
        size = 0
        for segment in reader._segments():
            if segment >= start.segment:
                length = _size(reader._segment_path(segment))
                size += max(0, length - start.offset) if segment == start.segment else length
        return size + _size(path / _OVERFLOW)

    # -- writing --------------------------------------------------------------------------

    def append(self, records: Sequence[tuple[int, bytes]]) -> None:
        """Write records after everything already spooled (durable after :meth:`sync`)."""
        if not records:
            return
        data = b"".join(b"%d\t%s\n" % (pid, body) for pid, body in records)
        with self._mutex:
            if self._writer.tell() + len(data) > SEGMENT_BYTES and self._writer.tell() > 0:
                self._rotate()
            self._writer.write(data)
            self._dirty = True
            self._unsent += len(records)

    def sync(self) -> None:
        """Make every appended record durable (one fsync for all since the last one)."""
        with self._mutex:
            if self._dirty:
                self._writer.flush()
                os.fsync(self._writer.fileno())
                self._dirty = False
        if self._overflow_count:
            with self._overflow_mutex:
                os.fsync(self._overflow_writer.fileno())

    @property
    def overflow_count(self) -> int:
        return self._overflow_count

    def append_overflow(self, body: bytes) -> None:
        """From any thread: keep a record that has no publishing id yet. It reaches the OS
        at once (safe from a process crash) and the disk at the publisher's next sync."""
        with self._overflow_mutex:
            self._overflow_writer.write(body + b"\n")
            self._overflow_writer.flush()
            self._overflow_count += 1

    def drain_overflow(self, assign: Callable[[list[bytes]], list[tuple[int, bytes]]]) -> int:
        """Move the overflow records into the segments, ids given by ``assign``. They are
        fsynced in the segments before they leave the overflow file, and only the bytes
        moved leave it: the app's threads go on appending meanwhile (a crash in between
        sends a record twice, never loses one)."""
        overflow = self.path / _OVERFLOW
        with self._overflow_mutex:
            if not self._overflow_count:
                return 0
            self._overflow_writer.flush()
            size = self._overflow_writer.tell()
        with open(overflow, "rb") as handle:
            data = handle.read(size)
        moved = data[: data.rfind(b"\n") + 1]  # whole lines only
        bodies = [line for line in moved.split(b"\n") if line]
        self.append(assign(bodies))
        with self._mutex:
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._dirty = False
        with self._overflow_mutex:
            self._overflow_writer.flush()
            with open(overflow, "rb") as handle:
                handle.seek(len(moved))
                rest = handle.read()
            tmp = self.path / (_OVERFLOW + ".tmp")
            _write_private(tmp, rest)
            tmp.replace(overflow)
            self._overflow_writer.close()
            self._overflow_writer = _open_append(overflow)
            self._overflow_count -= moved.count(b"\n")
        return len(bodies)

    def last_id(self) -> int:
        """The highest publishing id in the segments (0 if none)."""
        highest = 0
        for segment in self._segments():
            with open(self._segment_path(segment), "rb") as handle:
                for line in handle:
                    pid_text = line.partition(b"\t")[0]
                    if pid_text.isdigit():
                        highest = max(highest, int(pid_text))
        return highest

    def _rotate(self) -> None:
        self._writer.flush()
        os.fsync(self._writer.fileno())
        self._writer.close()
        self._write_segment += 1
        self._writer = _open_append(self._segment_path(self._write_segment))

    # -- reading and committing -----------------------------------------------------------

    @property
    def unsent(self) -> int:
        """Records spooled and not yet confirmed by the broker."""
        return self._unsent

    def read(self, max_count: int, max_bytes: int) -> list[SpooledRecord]:
        """The next records after the read cursor (which moves past them)."""
        out: list[SpooledRecord] = []
        size = 0
        with self._mutex:
            self._writer.flush()
            while len(out) < max_count and size < max_bytes:
                cursor = self._cursor
                try:
                    handle = open(self._segment_path(cursor.segment), "rb")  # noqa: SIM115
                except FileNotFoundError:
                    handle = None
                offset = cursor.offset
                if handle is not None:
                    with handle:
                        handle.seek(offset)
                        while len(out) < max_count and size < max_bytes:
                            line = handle.readline(SEGMENT_BYTES)
                            if not line.endswith(b"\n"):
                                break  # the end, or a line still being written
                            offset += len(line)
                            pid_text, _, body = line[:-1].partition(b"\t")
                            if pid_text.isdigit() and body:
                                # (a damaged line cannot be a whole record: it is passed over)
                                end = Position(cursor.segment, offset)
                                out.append(SpooledRecord(int(pid_text), body, end))
                                size += len(body)
                    self._cursor = Position(cursor.segment, offset)
                if len(out) >= max_count or size >= max_bytes:
                    break
                if self._cursor.segment >= self._write_segment:
                    break
                # A finished segment ends here (or in a torn line): go on with the next.
                self._cursor = Position(self._cursor.segment + 1, 0)
        return out

    def commit(self, upto: Position, count: int) -> None:
        """The broker confirmed everything up to ``upto`` (``count`` records since the last
        commit): forget it, and drop the segments it finishes."""
        with self._mutex:
            self._committed = upto
            self._unsent = max(0, self._unsent - count)
            tmp = self.path / (_COMMIT + ".tmp")
            # (not fsynced: a commit lost in a crash only means a resend the broker drops)
            _write_private(tmp, f"{upto.segment} {upto.offset}".encode("ascii"), sync=False)
            tmp.replace(self.path / _COMMIT)
            for segment in self._segments():
                if segment < upto.segment:
                    self._segment_path(segment).unlink(missing_ok=True)
            if self._unsent == 0 and upto.segment == self._write_segment:
                self._writer.flush()
                if upto.offset == self._writer.tell():
                    self._truncate()

    def rewind(self) -> None:
        """Read again from the last commit (the broker may not have what was sent since)."""
        with self._mutex:
            self._cursor = self._committed

    def _truncate(self) -> None:
        # Everything is confirmed: start over so the spool does not grow forever.
        self._writer.truncate(0)
        self._writer.seek(0)
        self._committed = self._cursor = Position(self._write_segment, 0)
        _write_private(self.path / _COMMIT, f"{self._write_segment} 0".encode("ascii"), sync=False)

    # -- housekeeping ---------------------------------------------------------------------

    def close(self, *, remove_if_empty: bool = True) -> None:
        """Release the folder; remove it when nothing in it waits for the broker."""
        with self._mutex, self._overflow_mutex:
            if self._closed:
                return
            self._closed = True
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer.close()
            self._overflow_writer.flush()
            os.fsync(self._overflow_writer.fileno())
            self._overflow_writer.close()
            if remove_if_empty and self._unsent == 0 and self._overflow_count == 0:
                shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._lock_fd)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's handles without touching its files."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._overflow_writer.close()
        os.close(self._lock_fd)

    def _segments(self) -> list[int]:
        found = []
        for item in self.path.glob("seg-*.log"):
            number = item.stem.removeprefix("seg-")
            if number.isdigit():
                found.append(int(number))
        return sorted(found)

    def _segment_path(self, segment: int) -> Path:
        return self.path / f"seg-{segment:08d}.log"

    def _read_commit(self) -> Position:
        try:
            seg, off = (self.path / _COMMIT).read_text(encoding="ascii").split()
            return Position(int(seg), int(off))
        except (FileNotFoundError, ValueError):
            segments = self._segments()
            return Position(segments[0] if segments else 1, 0)

    def _count_lines_after(self, start: Position) -> int:
        count = 0
        for segment in self._segments():
            if segment < start.segment:
                continue
            with open(self._segment_path(segment), "rb") as handle:
                if segment == start.segment:
                    handle.seek(start.offset)
                count += sum(
                    chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")
                )
        return count


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _private(path: str, flags: int) -> int:
    """An opener that makes the file 0600 whatever the umask (and tightens an old one)."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _open_append(path: Path) -> BufferedWriter:
    return open(path, "ab", opener=_private)


def _write_private(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` (replacing it), readable by its owner only."""
    with open(path, "wb", opener=_private) as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())


def _tighten(folder: Path) -> None:
    """An adopted folder may come from a version, or a umask, that left it readable."""
    os.chmod(folder, 0o700)
    for item in folder.iterdir():
        if item.is_file():
            os.chmod(item, 0o600)


def _ends_a_line(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _lock(path: Path) -> int | None:
    fd = _private(str(path), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
