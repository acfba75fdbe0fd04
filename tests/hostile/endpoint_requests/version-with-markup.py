"""A version string of markup: http.server quotes it in its error page, which must stay
escaped (and bounded)."""
REQUEST = b"GET /healthz <script>alert(1)</script>\r\n\r\n"
EXPECT = (400,)
