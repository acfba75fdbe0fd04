"""A path of bytes that are not UTF-8."""
REQUEST = b"GET /\xff\xfe\xc3\x28 HTTP/1.1\r\n\r\n"
EXPECT = (404,)
