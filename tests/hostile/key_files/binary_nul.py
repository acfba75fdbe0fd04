"""Binary bytes with NULs and no line ends: error messages must not echo them."""


def damage(good: bytes) -> bytes:
    return bytes(range(256)) * 4
