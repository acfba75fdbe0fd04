"""A method name of 10,000 letters: no do_<METHOD> lookup may fail on it."""
REQUEST = b"A" * 10_000 + b" /metrics HTTP/1.1\r\n\r\n"
EXPECT = (405,)
