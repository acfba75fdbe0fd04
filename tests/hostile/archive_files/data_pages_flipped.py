"""A good footer over data pages whose bytes were altered (bit rot, or tampering): the
compressed pages no longer decode."""


def damage(good: bytes) -> bytes:
    body = bytearray(good)
    for position in range(8, len(body) // 2, 7):
        body[position] ^= 0xFF
    return bytes(body)
