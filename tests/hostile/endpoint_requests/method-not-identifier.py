"""A method that is no Python identifier (do_<METHOD> is looked up by name)."""
REQUEST = b"G-E.T /metrics HTTP/1.1\r\n\r\n"
EXPECT = (405,)
