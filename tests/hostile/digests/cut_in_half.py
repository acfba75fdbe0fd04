"""A digest cut short (an interrupted copy)."""


def damage(good: bytes) -> bytes:
    return good[: len(good) // 2]
