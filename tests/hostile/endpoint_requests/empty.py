"""A connection that sends nothing and closes its side."""
REQUEST = b""
EXPECT = (None,)
