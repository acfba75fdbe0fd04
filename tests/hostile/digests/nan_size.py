"""NaN as an object's size (Python's json module accepts it; JSON does not)."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["objects"][0]["size"] = float("nan")
    return json.dumps(document).encode()
