"""JSON, but a list, not an object."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b'["ready"]')
EXPECT = "not an object"
