"""A negative first offset, to make a gap look closed."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["first_offset"] = -1
    return json.dumps(document).encode()
