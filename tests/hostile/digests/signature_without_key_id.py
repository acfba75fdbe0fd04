"""A signature but no key id: which key would check it?"""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["key_id"] = None
    document["signature"] = "AAAA"
    return json.dumps(document).encode()
