"""Bytes, 1 MB of them: not JSON; rendered from their start only."""

from typing import Any

EXTRA: dict[str, Any] = {"action": "UPLOAD", "blob": b"\x00\xff" * 500_000, "object_id": b"id"}
EXPECT = {"extra_startswith": {"blob": "<unserialisable bytes> b'\\x00\\xff"}, "max_body": 10_000}
