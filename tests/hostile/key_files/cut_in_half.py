"""A PEM key cut short: the base64 body ends mid-way and the END line is gone."""


def damage(good: bytes) -> bytes:
    return good[: len(good) // 2]
