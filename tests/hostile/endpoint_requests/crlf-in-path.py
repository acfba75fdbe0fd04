"""An encoded CR LF in the path, trying to add a Set-Cookie header to the answer."""
REQUEST = b"GET /x%0d%0aSet-Cookie:%20pwned=1 HTTP/1.1\r\n\r\n"
EXPECT = (404,)
