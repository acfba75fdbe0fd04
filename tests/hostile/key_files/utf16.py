"""The PEM saved as UTF-16 by an editor."""


def damage(good: bytes) -> bytes:
    return good.decode("ascii").encode("utf-16")
