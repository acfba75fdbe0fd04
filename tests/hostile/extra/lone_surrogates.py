"""Lone surrogates (from a bad decode with surrogateescape): UTF-8 cannot hold them."""

from typing import Any

EXTRA: dict[str, Any] = {
    "action": "LOGIN",
    "username": "bad\udcff",
    "path\ud800": "x\udc80y",
    "extra": {"k\udfff": ["\ud83d"]},
}
EXPECT = {"extra": {"path\ufffd": "x\ufffdy"}}
