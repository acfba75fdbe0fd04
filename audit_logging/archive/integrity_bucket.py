"""What ``verify --integrity`` reads from S3 (through pyarrow's S3 filesystem, as the other
archive commands): one listing of the archive's prefix, sorted into each stream's digests and
objects and the published keys; the digests and keys themselves; every listed object's bytes,
hashed as they arrive.

Reads run side by side on :data:`READERS` threads (S3's latency, not the hashing, is what
costs: hashlib and pyarrow both let go of the GIL). S3 failing raises, and the command fails
(exit 3); an object a digest lists that S3 does not have is a finding, not a failure.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeVar

import pyarrow.fs as pafs

from audit_logging.archive.digest_format import (
    DIGEST_DIR,
    MAX_DIGEST_BYTES,
    PUBLIC_KEYS_DIR,
    DigestFormatError,
    ObjectEntry,
    digest_key_re,
    parse_digest,
)
from audit_logging.archive.integrity import (
    Problem,
    Read,
    Stored,
    StreamObject,
    object_of,
    one_line,
)
from audit_logging.archive.integrity_keys import MAX_PUBLIC_KEY_BYTES
from audit_logging.archive.integrity_objects import Hashed

READERS: Final = 16
IN_FLIGHT: Final = 2 * READERS
CHUNK: Final = 4 * 1024 * 1024
T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass
class Listing:
    """The archive's prefix, sorted: by stream, its digest folder's objects and its archive
    and dead-letter objects; the published keys; objects under ``digest/`` in no stream's
    folder."""

    digests: dict[str, list[Stored]] = dataclasses.field(default_factory=dict)
    objects: dict[str, list[StreamObject]] = dataclasses.field(default_factory=dict)
    public_keys: list[Stored] = dataclasses.field(default_factory=list)
    stray: list[Stored] = dataclasses.field(default_factory=list)

    def streams(self) -> set[str]:
        return set(self.digests) | set(self.objects)


def sort_listing(prefix: str, listed: Iterable[Stored]) -> Listing:
    found = Listing()
    digest_dir = f"{prefix}{DIGEST_DIR}"
    keys_dir = f"{prefix}{PUBLIC_KEYS_DIR}"
    for stored in listed:
        if stored.key.startswith(keys_dir):
            found.public_keys.append(stored)
        elif stored.key.startswith(digest_dir):
            stream, slash, _ = stored.key[len(digest_dir):].partition("/")
            if slash and stream:
                found.digests.setdefault(stream, []).append(stored)
            else:
                found.stray.append(stored)
        else:
            named = object_of(prefix, stored)
            if named is not None:
                found.objects.setdefault(named.stream, []).append(named)
    return found


class Bucket:
    """One archive's bucket and prefix, read for ``verify --integrity``."""

    def __init__(self, fs: pafs.FileSystem, bucket: str, prefix: str) -> None:
        self.fs = fs
        self.bucket = bucket
        self.prefix = prefix
        self._pool = concurrent.futures.ThreadPoolExecutor(
            READERS, thread_name_prefix="integrity-read")

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def listing(self) -> Listing:
        """Every object under the prefix (one listing, a request per 1,000 objects)."""
        selector = pafs.FileSelector(self._path(self.prefix), recursive=True,
                                     allow_not_found=True)
        start = len(self.bucket) + 1
        stored = (
            Stored(info.path[start:], info.size or 0, info.mtime)
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )
        return sort_listing(self.prefix, stored)

    def digest_streams(self) -> list[str]:
        """The streams with a folder under ``digest/`` (one short listing)."""
        selector = pafs.FileSelector(self._path(f"{self.prefix}{DIGEST_DIR}"), recursive=False,
                                     allow_not_found=True)
        keys_folder = PUBLIC_KEYS_DIR.removeprefix(DIGEST_DIR).rstrip("/")
        return sorted(info.base_name for info in self.fs.get_file_info(selector)
                      if info.type == pafs.FileType.Directory and info.base_name != keys_folder)

    def _bytes(self, key: str, limit: int) -> bytes | None:
        """The object's bytes; None when it holds more than ``limit``."""
        with self.fs.open_input_stream(self._path(key)) as stream:
            data: bytes = stream.read(limit + 1)
        return None if len(data) > limit else data

    def digests(self, stream: str, stored: Sequence[Stored]) -> tuple[list[Read], list[Problem]]:
        """The stream's digest folder, read and parsed side by side; a problem for each
        object there that is no digest."""
        pattern = digest_key_re(self.prefix, stream)
        reads: list[Read] = []
        problems: list[Problem] = []
        named = []
        for item in stored:
            match = pattern.fullmatch(item.key)
            if match is None:
                problems.append(Problem(
                    "digest_unreadable", item.key,
                    "not named as a digest of its folder's stream "
                    "(year=YYYY/month=MM/day=DD/STREAM-FIRST-LAST.json)", stream))
            elif item.size > MAX_DIGEST_BYTES:
                problems.append(Problem("digest_unreadable", item.key,
                                        f"{item.size:,} bytes is larger than any digest", stream))
            else:
                named.append((item, (int(match[1]), int(match[2]))))
        contents = self._in_order(lambda pair: self._bytes(pair[0].key, MAX_DIGEST_BYTES), named)
        for (item, offsets), data in zip(named, contents, strict=True):
            if data is None:
                problems.append(Problem("digest_unreadable", item.key,
                                        "larger than any digest", stream))
                continue
            try:
                reads.append(Read(item.key, parse_digest(data), offsets))
            except DigestFormatError as exc:
                # The message may quote the bucket's bytes: one escaped line.
                problems.append(Problem("digest_unreadable", item.key, one_line(str(exc)),
                                        stream))
        return reads, problems

    def public_keys(self, stored: Sequence[Stored]) -> dict[str, bytes | None]:
        contents = self._in_order(lambda s: self._bytes(s.key, MAX_PUBLIC_KEY_BYTES), stored)
        return {item.key: data for item, data in zip(stored, contents, strict=True)}

    def hash_all(
        self, entries: Sequence[ObjectEntry], present: Callable[[str], bool],
        on_done: Callable[[ObjectEntry], None],
    ) -> dict[str, Hashed | None]:
        """Each entry's object hashed (None: the bucket does not hold it; ``present`` says
        what the listing showed, so a missing object costs no request)."""
        def one(entry: ObjectEntry) -> Hashed | None:
            try:
                return self._hash(entry.key, entry.size) if present(entry.key) else None
            finally:
                on_done(entry)

        found = self._in_order(one, entries)
        return {entry.key: hashed for entry, hashed in zip(entries, found, strict=True)}

    def _in_order(self, work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``work`` of each item on the readers, results in the order of ``items``; at most
        :data:`IN_FLIGHT` submitted at once (an archive of millions of objects would
        otherwise hold a future, and soon the bytes, of each)."""
        queue = iter(items)
        pending = collections.deque(
            self._pool.submit(work, item) for item in itertools.islice(queue, IN_FLIGHT))
        try:
            while pending:
                future = pending.popleft()
                for item in itertools.islice(queue, 1):
                    pending.append(self._pool.submit(work, item))
                yield future.result()
        finally:
            for left in pending:  # stopped early: an error
                left.cancel()

    def _hash(self, key: str, listed: int) -> Hashed | None:
        """The object's SHA-256 and size; past ``listed`` + 1 bytes it is not read further
        (it is altered whatever follows, and a replacement may be of any size)."""
        digest = hashlib.sha256()
        size = 0
        try:
            with self.fs.open_input_stream(self._path(key)) as stream:
                while size <= listed:
                    chunk = stream.read_buffer(min(CHUNK, listed + 1 - size))
                    if not chunk.size:
                        break
                    digest.update(chunk)
                    size += chunk.size
        except FileNotFoundError:  # deleted since the listing: as missing as can be
            return None
        return Hashed(digest.hexdigest(), size)
