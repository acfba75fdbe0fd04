"""A GET with a chunked body that never ends: never read, the answer comes at once."""
REQUEST = (b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"1000\r\n" + b"x" * 4096 + b"\r\n") * 16
EXPECT = (200,)
