"""Finding the digest of a stream that covers an offset, without listing the whole chain.

A stream's digests are ``{prefix}digest/{stream}/year=/month=/day=/{stream}-{first}-{last}.json``
(the day each was written). A digest starts at the offset after the one before it and is
written after it, so in date order the folders hold ever higher offsets: the digest covering
an offset is found by a binary search over the years, then the months, then the days, one
folder listing a step (a day of hourly digests is 24 keys), instead of listing a chain of
thousands of keys.

That order is trusted only for the answers it gives cheaply and that cost nothing if wrong: a
digest whose range holds the offset (its content is then checked by the caller), or an offset
after the newest digest (pending, which the next digest settles). Anything else (an offset in
no digest's range, before the first digest, or a stream without digests) may be a digest
removed, or a consumer that took over with a clock behind its predecessor's: it is decided
from a listing of the whole chain, bounded by :data:`MAX_KEYS_LISTED`.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from typing import Final, Literal

import pyarrow.fs as pafs

from audit_logging.archive.digest_format import digest_dir, digest_key_re
from audit_logging.errors import AuditLoggingError

LEVELS: Final = ("year=", "month=", "day=")
# Folder listings one lookup may make (a binary search makes a few dozen at most).
MAX_LISTINGS: Final = 256
# Digest keys the listing of a whole chain may hold: 11 years of hourly digests.
MAX_KEYS_LISTED: Final = 100_000
Where = Literal["covered", "after", "before", "gap", "none"]


class LookupTooLongError(AuditLoggingError):
    """Finding a digest passed its deadline or its bound on listings."""


@dataclasses.dataclass(frozen=True, order=True)
class DigestName:
    """A digest as its key names it."""

    first_offset: int
    last_offset: int
    key: str


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where an offset falls in a stream's chain.

    ``covered``: ``digest`` is the digest whose range holds it. ``after``: it comes after the
    newest digest, ``digest``. ``before``: it comes before the first digest there is,
    ``digest``. ``gap``: no digest holds it, ``digest`` ends before it and ``following``
    starts after it. ``none``: the stream has no digest."""

    where: Where
    digest: DigestName | None = None
    following: DigestName | None = None


class DigestFinder:
    """Looks up digests of one stream; each lookup at most :data:`MAX_LISTINGS` listings
    and, past ``deadline`` (a ``time.monotonic()`` value), :class:`LookupTooLongError`."""

    def __init__(
        self,
        fs: pafs.FileSystem,
        bucket: str,
        s3_prefix: str,
        stream: str,
        deadline: float | None = None,
    ) -> None:
        self.fs = fs
        self.bucket = bucket
        self.root = f"{bucket}/{digest_dir(s3_prefix, stream)}"
        self._key_re = digest_key_re(s3_prefix, stream)
        self.deadline = deadline
        self.listings = 0
        self.entries_listed = 0  # keys and folders the listings gave: S3 pages 1,000 a page
        self._children: dict[str, list[str]] = {}
        self._names: dict[str, list[DigestName]] = {}

    def place(self, offset: int) -> Placement:
        found = self._candidate(self.root, 0, offset)
        if found is not None:
            name, newest = found
            if name.first_offset <= offset <= name.last_offset:
                return Placement("covered", name)
            if newest and offset > name.last_offset:
                return Placement("after", name)
        return self._from_whole_chain(offset)

    # -- the binary search ------------------------------------------------------------

    def _candidate(self, folder: str, depth: int, offset: int) -> tuple[DigestName, bool] | None:
        """The last digest under ``folder`` (in the folders' order) starting at or before
        ``offset``, and whether it is the last digest under ``folder``."""
        if depth == len(LEVELS):
            names = self._names_in(folder)
            at = bisect.bisect_right([name.first_offset for name in names], offset)
            return (names[at - 1], at == len(names)) if at else None
        children = list(self._folders(folder, LEVELS[depth]))
        best = None
        low, high = 0, len(children) - 1
        while low <= high:
            middle = (low + high) // 2
            first = self._first(children[middle], depth + 1)
            if first is None:  # a folder without digests: out of the search
                del children[middle]
                high -= 1
            elif first.first_offset <= offset:
                best, low = middle, middle + 1
            else:
                high = middle - 1
        if best is None:
            return None
        found = self._candidate(children[best], depth + 1, offset)
        if found is None:
            return None
        name, last_inside = found
        return name, last_inside and best == len(children) - 1

    def _first(self, folder: str, depth: int) -> DigestName | None:
        """The first digest under ``folder`` in the folders' order."""
        if depth == len(LEVELS):
            names = self._names_in(folder)
            return names[0] if names else None
        for child in self._folders(folder, LEVELS[depth]):
            first = self._first(child, depth + 1)
            if first is not None:
                return first
        return None

    def _folders(self, folder: str, level: str) -> list[str]:
        """The ``level`` folders (``year=2026``...) right under ``folder``, in date order."""
        kept = self._children.get(folder)
        if kept is None:
            found = []
            for info in self._list(folder, recursive=False):
                name = info.base_name
                if info.type == pafs.FileType.Directory and name.startswith(level):
                    value = name[len(level):]
                    # anything else is not the consumer's ('²' and '٣' pass str.isdigit)
                    if value.isascii() and value.isdigit():
                        found.append((int(value), f"{folder}{name}/"))
            kept = self._children[folder] = [path for _, path in sorted(found)]
        return kept

    def _names_in(self, folder: str) -> list[DigestName]:
        kept = self._names.get(folder)
        if kept is None:
            kept = self._names[folder] = sorted(self._parsed(self._list(folder, recursive=False)))
        return kept

    def _parsed(self, infos: list[pafs.FileInfo]) -> list[DigestName]:
        names = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            key = info.path[len(self.bucket) + 1:]
            match = self._key_re.fullmatch(key)
            if match is not None:
                names.append(DigestName(int(match[1]), int(match[2]), key))
        return names

    def _list(self, folder: str, *, recursive: bool) -> list[pafs.FileInfo]:
        self.listings += 1
        if self.listings > MAX_LISTINGS:
            raise LookupTooLongError(f"finding a digest under {self.root} took more than "
                                     f"{MAX_LISTINGS} listings")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise LookupTooLongError(f"finding a digest under {self.root} passed its deadline")
        selector = pafs.FileSelector(folder, recursive=recursive, allow_not_found=True)
        found = self.fs.get_file_info(selector)
        self.entries_listed += len(found)
        return found

    # -- the whole chain, when the search's answer needs confirming ---------------------

    def _from_whole_chain(self, offset: int) -> Placement:
        names: list[DigestName] = []
        # A year at a time, so that the bound is checked before memory holds more.
        for year in self._folders(self.root, LEVELS[0]):
            names.extend(self._parsed(self._list(year, recursive=True)))
            if len(names) > MAX_KEYS_LISTED:
                raise LookupTooLongError(
                    f"the digests under {self.root} are more than {MAX_KEYS_LISTED:,} keys"
                )
        if not names:
            return Placement("none")
        names.sort()
        for name in names:
            if name.first_offset <= offset <= name.last_offset:
                return Placement("covered", name)
        newest = max(names, key=lambda name: name.last_offset)
        if offset > newest.last_offset:
            return Placement("after", newest)
        if offset < names[0].first_offset:
            return Placement("before", names[0])
        before = max((n for n in names if n.last_offset < offset), key=lambda n: n.last_offset)
        following = min(n for n in names if n.first_offset > offset)
        return Placement("gap", before, following)
