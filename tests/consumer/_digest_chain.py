"""Reading a stream's digest chain back from the real S3, and the checks the consumer tests
make of it: written independently of ``verify --integrity``, so each can catch the other."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

from audit_logging.archive import digest_format as fmt
from audit_logging.archive.signing import load_public_pem, verify_signature
from audit_logging.settings import Settings
from tests.consumer._sinks import read_object, s3_keys


def chain(settings: Settings, stream: str | None = None) -> list[tuple[str, fmt.SignedDigest]]:
    stream = stream or settings.rabbitmq_stream_name
    keys = [k for k in s3_keys(settings, f"digest/{stream}/") if k.endswith(".json")]
    digests = [(key, fmt.parse_digest(read_object(settings, key))) for key in keys]
    return sorted(digests, key=lambda item: item[1].digest.first_offset)


def archived_objects(settings: Settings, stream: str) -> set[str]:
    """The stream's archive and dead-letter objects in S3."""
    name = re.compile(re.escape(stream) + r"-\d{20}-\d{20}\.(parquet|ndjson)")
    return {
        key
        for key in s3_keys(settings)
        if not key.startswith(settings.s3_prefix + "digest/")
        and name.fullmatch(key.rsplit("/", 1)[-1])
        and (key.endswith(".parquet") or "/dead-letter/" in key)
    }


def assert_complete_chain(
    settings: Settings, *, signed_by: str | Sequence[str] | None = None, stream: str | None = None
) -> list[tuple[str, fmt.SignedDigest]]:
    """The chain links, its offsets run on without a gap, every archive and dead-letter
    object is listed exactly once with the hash and size of its bytes, and every digest is
    signed with a key published in the bucket: ``signed_by`` (a key id, or the key ids in
    the order the chain used them), or unsigned."""
    used: list[str] = []
    stream = stream or settings.rabbitmq_stream_name
    digests = chain(settings, stream)
    assert digests, "no digest was written"
    for number, (key, signed) in enumerate(digests):
        digest = signed.digest
        assert digest.sequence == number, key
        assert key.endswith(f"-{digest.first_offset:020d}-{digest.last_offset:020d}.json")
        if number == 0:
            assert digest.previous is None
        else:
            before_key, before = digests[number - 1]
            assert digest.previous == before.link(before_key), key
            assert digest.first_offset == before.digest.last_offset + 1, key
        if signed_by is None:
            assert digest.key_id is None and signed.signature is None
        else:
            assert digest.key_id is not None and signed.signature is not None
            if not used or used[-1] != digest.key_id:
                used.append(digest.key_id)
            pem = read_object(settings, fmt.public_key_key(settings.s3_prefix, digest.key_id))
            assert verify_signature(load_public_pem(pem), digest.signed_bytes(), signed.signature)
        for entry in digest.objects:
            assert digest.first_offset <= entry.first_offset <= entry.last_offset
            assert entry.last_offset <= digest.last_offset
            data = read_object(settings, entry.key)
            assert entry.sha256 == hashlib.sha256(data).hexdigest(), entry.key
            assert entry.size == len(data), entry.key
    listed = [entry.key for _, signed in digests for entry in signed.digest.objects]
    assert len(listed) == len(set(listed)), "an object is listed twice"
    in_s3 = archived_objects(settings, stream)
    assert set(listed) == in_s3, (
        f"in S3, in no digest: {sorted(in_s3 - set(listed))}; "
        f"listed, not in S3: {sorted(set(listed) - in_s3)}; "
        f"digests: {[(k.rsplit('/', 1)[-1], d.digest.written_by) for k, d in digests]}"
    )
    if signed_by is not None:
        assert used == ([signed_by] if isinstance(signed_by, str) else list(signed_by))
    for (_, a), (_, b) in itertools.pairwise(digests):
        assert a.digest.last_offset < b.digest.first_offset
    return digests
