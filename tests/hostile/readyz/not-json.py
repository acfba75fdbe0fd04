"""An HTML error page where JSON was expected (a proxy in front of the consumer)."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b"<html><body>502 Bad Gateway</body></html>")
EXPECT = "no readiness report"
