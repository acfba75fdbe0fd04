"""Text that is no PEM at all."""


def damage(good: bytes) -> bytes:
    return b"this is not a key\n"
