"""An HTTP/0.9 request (no version): answered as HTTP/1.0, never a bare body."""
REQUEST = b"GET /healthz\r\n"
EXPECT = (200,)
