"""JSON nested 100,000 levels deep: a parser that recurses must not crash the reader."""


def damage(good: bytes) -> bytes:
    return b"[" * 100_000 + b"]" * 100_000
