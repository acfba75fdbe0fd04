"""A NUL byte inside the path of a known route."""
REQUEST = b"GET /metrics\x00/x HTTP/1.1\r\n\r\n"
EXPECT = (404,)
