"""HTTP 503 that says ready: the two disagree, which is reported, not trusted either way."""
from tests.status._readyz_server import Answer

ANSWER = Answer(503, b'{"status": "ready"}')
EXPECT = "answered HTTP 503 with status ready"
