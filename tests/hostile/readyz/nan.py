"""NaN where a boolean belongs (Python's json accepts it)."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b'{"status": "ready", "dependencies": {"s3": NaN}}')
EXPECT = "is not true or false"
