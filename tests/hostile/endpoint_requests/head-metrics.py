"""HEAD of /metrics: not GET, answered 405 with no body expected."""
REQUEST = b"HEAD /metrics HTTP/1.1\r\n\r\n"
EXPECT = (405,)
