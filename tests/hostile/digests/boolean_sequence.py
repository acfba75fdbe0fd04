"""true where the sequence number goes (Python counts True as the integer 1)."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["sequence"] = True
    return json.dumps(document).encode()
