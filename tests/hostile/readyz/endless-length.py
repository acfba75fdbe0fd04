"""A Content-Length of 1 TB and a body that keeps coming: read up to 64 KiB only."""
from tests.status._readyz_server import Answer

ANSWER = Answer(200, b"[" * 200_000, chunk=4096, length=10**12, hang=True)
EXPECT = "larger than 64 KiB"
