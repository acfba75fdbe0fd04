"""A path climbing out of the root: nothing here reads files."""
REQUEST = b"GET /../../../../etc/passwd HTTP/1.1\r\n\r\n"
EXPECT = (404,)
