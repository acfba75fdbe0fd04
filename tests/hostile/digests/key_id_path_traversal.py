"""A key id that is a path: a reader building the public key's S3 key from it would read
another object."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["key_id"] = "../../archive/year=2026/x"
    document["signature"] = "AAAA"
    return json.dumps(document).encode()
