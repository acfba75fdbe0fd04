"""A dependency given as a string: "false" would read as true if taken at its truthiness."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b'{"status": "ready", "dependencies": {"broker": "false"}}')
EXPECT = "is not true or false"
