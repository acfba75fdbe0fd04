"""Only empty lines: no request line ever comes."""
REQUEST = b"\r\n" * 5000
EXPECT = (None,)
