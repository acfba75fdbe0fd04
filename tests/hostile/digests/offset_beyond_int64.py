"""An offset past what a stream offset can be (2**64): no arithmetic on it may overflow."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["last_offset"] = 2**64
    return json.dumps(document).encode()
