"""Headers, then nothing, the connection held open."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b"", length=100, hang=True)
EXPECT = "no complete answer within"
