"""Bytes that are no Parquet at all (a stray upload under the archive's prefix)."""


def damage(good: bytes) -> bytes:
    return b"this is not parquet\n" * 100
