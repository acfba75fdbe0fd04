"""Offsets written as strings: "10" must not compare as text with numbers."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["last_offset"] = str(document["digest"]["last_offset"])
    return json.dumps(document).encode()
