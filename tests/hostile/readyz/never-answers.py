"""Accepts the connection and the request, and never says a word."""
from tests.status._readyz_server import Answer

ANSWER = Answer(send_headers=False, hang=True)
EXPECT = "unreachable: no answer within"
