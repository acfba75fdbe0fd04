"""10 MB of valid JSON: a ready answer with a huge problem list. Read up to 64 KiB only."""
import json

from tests.status._readyz_server import Answer

ANSWER = Answer(200, json.dumps({"status": "ready", "problems": ["x" * 1000] * 10_000}).encode())
EXPECT = "larger than 64 KiB"
