"""A request line of 70 KB: past http.server's 64 KiB line limit."""
REQUEST = b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"
EXPECT = (414,)
