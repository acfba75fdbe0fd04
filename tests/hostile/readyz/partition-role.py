"""A partition role that is neither active nor standby, named with control characters."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b'{"status": "ready", "partitions": {"audit\\u001b[2J\\n": "leader"}}')
EXPECT = "is not \"active\" or \"standby\""
