"""A GET announcing a 100 GB body it never sends: the body of a GET is never read."""
REQUEST = b"GET /healthz HTTP/1.1\r\nContent-Length: 100000000000\r\n\r\n"
EXPECT = (200,)
