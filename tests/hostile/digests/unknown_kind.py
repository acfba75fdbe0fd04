"""An object of a kind no digest lists."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["objects"][0]["kind"] = "secret"
    return json.dumps(document).encode()
