"""An HTTP version that does not exist."""
REQUEST = b"GET /healthz HTTP/9.9\r\n\r\n"
EXPECT = (505,)
