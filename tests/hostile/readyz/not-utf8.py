"""Bytes that are not UTF-8."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b'{"status": "\xff\xfe ready"}')
EXPECT = "no readiness report"
