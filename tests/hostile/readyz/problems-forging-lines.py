"""Not ready, with problems holding line breaks, escapes and 10,000 characters: shown
bounded and escaped, one line each, never a forged line of the screen."""
import json

from tests.status._readyz_server import Answer

ANSWER = Answer(503, json.dumps({
    "status": "not ready",
    "problems": ["broker down\nhealthy\n\x1b[2J" + "y" * 10_000, "UNHEALTHY: forged\r\n"],
}).encode())
EXPECT = None  # a not-ready answer is no error: its problems are the reason
