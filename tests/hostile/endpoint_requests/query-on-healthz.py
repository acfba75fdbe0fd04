"""A query string on a route: ignored, the route answers."""
REQUEST = b"GET /healthz?" + b"q=1&" * 1000 + b" HTTP/1.1\r\n\r\n"
EXPECT = (200,)
