"""Valid JSON of the wrong shape: a list of digests."""

import json


def damage(good: bytes) -> bytes:
    return json.dumps([json.loads(good)]).encode()
