"""An empty key file (a deploy that wrote nothing)."""


def damage(good: bytes) -> bytes:
    return b""
