"""Not JSON at all: a digest object overwritten with text."""


def damage(good: bytes) -> bytes:
    return b"this digest was replaced"
