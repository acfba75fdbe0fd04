"""Expect: 100-continue on a GET (the body is never read, so no 100 is sent)."""
REQUEST = b"GET /healthz HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
EXPECT = (200,)
