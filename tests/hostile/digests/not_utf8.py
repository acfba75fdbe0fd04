"""Bytes that are not UTF-8 inside a string."""


def damage(good: bytes) -> bytes:
    return good.replace(b'"written_by":"', b'"written_by":"\xff\xfe', 1)
