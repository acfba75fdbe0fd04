"""An absolute URI naming another host: never a proxy, never the route."""
REQUEST = b"GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\n\r\n"
EXPECT = (404,)
