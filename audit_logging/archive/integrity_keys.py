"""Which keys ``verify --integrity`` trusts, and the digests' signatures checked with them.

Keys given with ``--public-key`` are *pinned*: then they alone are trusted, every digest must
be signed by one of them, and a key published in the bucket under a pinned id must be that
key. Without pinned keys, the keys published under ``digest/public-keys/`` are used: that
proves the chain was not changed by someone without the private key, as long as nobody
replaced the chain and the published keys together, which only pinning rules out (the
report says so).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_logging.archive.digest_format import PUBLIC_KEYS_DIR
from audit_logging.archive.integrity import Problem, Read, key_text
from audit_logging.archive.signing import key_id, load_public_pem, verify_signature

_PEM_NAME_RE: Final = re.compile(r"([0-9a-f]{32})\.pem")
# A PEM public key is about 113 bytes: larger objects are not read.
MAX_PUBLIC_KEY_BYTES: Final = 64 * 1024


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclasses.dataclass(frozen=True)
class KeyRing:
    pinned: Mapping[str, Ed25519PublicKey]
    published: Mapping[str, Ed25519PublicKey]

    @property
    def is_pinned(self) -> bool:
        return bool(self.pinned)

    def trusted(self, key_id_: str) -> Ed25519PublicKey | None:
        return (self.pinned if self.is_pinned else self.published).get(key_id_)


def pinned_keys(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    return {key_id(key): key for key in keys}


def published_keys(
    prefix: str, files: Mapping[str, bytes | None], pinned: Mapping[str, Ed25519PublicKey]
) -> tuple[dict[str, Ed25519PublicKey], list[Problem]]:
    """The keys published in the bucket (``files``: key -> bytes, None when too large to be
    one) that are what their name says, and a problem for each other file there."""
    published: dict[str, Ed25519PublicKey] = {}
    problems: list[Problem] = []
    folder = f"{prefix}{PUBLIC_KEYS_DIR}"
    for key, data in sorted(files.items()):
        match = _PEM_NAME_RE.fullmatch(key[len(folder):]) if key.startswith(folder) else None
        if match is None:
            problems.append(Problem("public_key_unreadable", key,
                                    "not named KEY_ID.pem (32 lower-case hex digits)"))
            continue
        if data is None:
            problems.append(Problem("public_key_unreadable", key,
                                    f"larger than {MAX_PUBLIC_KEY_BYTES:,} bytes"))
            continue
        try:
            public = load_public_pem(data)
        except ValueError as exc:
            problems.append(Problem("public_key_unreadable", key, str(exc)))
            continue
        named, computed = match[1], key_id(public)
        if named in pinned and _raw(pinned[named]) != _raw(public):
            problems.append(Problem(
                "public_key_differs", key,
                f"holds the key of id {computed}, not the pinned key {named}"))
        elif computed != named:
            problems.append(Problem(
                "public_key_id_mismatch", key,
                f"holds the key of id {computed}: it is not key {named}"))
        else:
            published[named] = public
    return published, problems


@dataclasses.dataclass
class Signatures:
    problems: list[Problem]
    # Digest key -> its signature problem (its successor's link is judged with it).
    problem_of: dict[str, Problem]
    unsigned: int
    key_ids: set[str]

    @property
    def troubled(self) -> set[str]:
        return set(self.problem_of)

    def add(self, key: str, problem: Problem) -> None:
        if not self.problems or self.problems[-1] is not problem:  # a group adds in a row
            self.problems.append(problem)
        self.problem_of[key] = problem


def check_signatures(stream: str, reads: Sequence[Read], ring: KeyRing) -> Signatures:
    """Each digest's signature, checked with the trusted key of its key id. A key that
    cannot be used is one problem for all the digests it signed."""
    result = Signatures([], {}, 0, set())
    untrusted: dict[str, list[str]] = {}
    for read in reads:
        digest, signature = read.digest, read.signed.signature
        if digest.key_id is None or signature is None:
            if ring.is_pinned:
                result.add(read.key, Problem(
                    "unsigned_digest", read.key,
                    f"unsigned (sequence {digest.sequence}), while keys are pinned", stream))
            else:
                result.unsigned += 1
            continue
        result.key_ids.add(digest.key_id)
        public = ring.trusted(digest.key_id)
        if public is None:
            untrusted.setdefault(digest.key_id, []).append(read.key)
        elif not verify_signature(public, digest.signed_bytes(), signature):
            result.add(read.key, Problem(
                "bad_signature", read.key,
                f"its signature does not verify with key {digest.key_id} (sequence "
                f"{digest.sequence})", stream))
    for key_id_, keys in sorted(untrusted.items()):
        if ring.is_pinned:
            kind, why = "unpinned_key", "which no --public-key gives"
        else:
            kind, why = "unknown_key", ("which is neither given with --public-key nor "
                                        "published (as itself) in the bucket")
        problem = Problem(
            kind, keys[0], f"{len(keys):,} digest(s) signed by key {key_id_}, {why}: "
            f"{', '.join(key_text(k) for k in keys[:5])}{' ...' if len(keys) > 5 else ''}",
            stream)
        for key in keys:
            result.add(key, problem)
    return result


def downgrades(stream: str, walked: Sequence[Read], ring: KeyRing) -> list[Problem]:
    """Unsigned digests after a signed one in the chain (pinned keys already make every
    unsigned digest a problem)."""
    if ring.is_pinned:
        return []
    problems = []
    signed_before: Read | None = None
    for read in walked:
        if read.digest.key_id is not None:
            signed_before = read
        elif signed_before is not None:
            problems.append(Problem(
                "unsigned_after_signed", read.key,
                f"unsigned (sequence {read.digest.sequence}) after "
                f"{key_text(signed_before.key)} signed by key {signed_before.digest.key_id}",
                stream))
    return problems
