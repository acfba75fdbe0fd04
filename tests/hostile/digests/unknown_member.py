"""A member no digest has: a reader that ignored it would verify content it never checked."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["trusted"] = True
    return json.dumps(document).encode()
