"""The PEM lines intact, the base64 between them changed: no longer a key's DER."""


def damage(good: bytes) -> bytes:
    lines = good.splitlines()
    return b"\n".join([lines[0], b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", lines[-1]]) + b"\n"
