"""An object's hash that is no SHA-256 (upper case, too short): compared as text it would
never match, and the object would look altered rather than the digest."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["objects"][0]["sha256"] = "ABC"
    return json.dumps(document).encode()
