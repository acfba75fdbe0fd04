"""One header line of 70 KB."""
REQUEST = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n"
EXPECT = (431,)
