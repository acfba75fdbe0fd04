"""60 KB of nested arrays: within the size bound, past the JSON parser's recursion limit."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b"[" * 30_000 + b"]" * 30_000)
EXPECT = "nested too deeply"
