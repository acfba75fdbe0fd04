"""A footer whose length field claims 2 GiB: a reader that trusted it would allocate that."""


def damage(good: bytes) -> bytes:
    return good[:-8] + (0x7FFFFFF0).to_bytes(4, "little") + b"PAR1"
