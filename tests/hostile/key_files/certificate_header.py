"""The key's body under a CERTIFICATE header: PEM of another type."""


def damage(good: bytes) -> bytes:
    lines = good.splitlines()
    return b"\n".join([b"-----BEGIN CERTIFICATE-----", *lines[1:-1],
                       b"-----END CERTIFICATE-----"]) + b"\n"
