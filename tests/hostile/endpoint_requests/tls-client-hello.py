"""A TLS ClientHello sent to the plain-HTTP port (a scraper configured for https)."""
REQUEST = bytes.fromhex("16030100f4010000f00303") + bytes(range(32)) + b"\x00\x00\x02\x13\x01"
EXPECT = (400,)
