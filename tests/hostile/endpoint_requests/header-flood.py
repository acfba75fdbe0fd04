"""200 headers: past the 100 headers http.client's parser takes."""
REQUEST = b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"
EXPECT = (431,)
