"""Ten megabytes: a key file is a few hundred bytes; reading this whole must not be needed."""


def damage(good: bytes) -> bytes:
    return good + b"A" * 10_000_000
