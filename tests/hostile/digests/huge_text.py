"""A 10 MB "written_by": log lines and reports that echo it must stay bounded."""

import json


def damage(good: bytes) -> bytes:
    document = json.loads(good)
    document["digest"]["written_by"] = "A" * 10_000_000
    return json.dumps(document).encode()
