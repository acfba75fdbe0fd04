"""An internal error: neither ready nor not ready."""
from tests.status._readyz_server import Answer

ANSWER = Answer(500, b"Internal Server Error")
EXPECT = "answered HTTP 500"
