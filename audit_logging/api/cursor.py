"""The ``next`` cursor: an opaque, checked token for the position after a page.

It is base64url JSON of the last hit's sort values (timestamp in epoch nanoseconds, log_id)
and the absolute offset of the next result, so deep pages report a true ``from_offset``.
It carries no filters: used with other filters it is just a position in the newest-first
order, which can reveal nothing the filters do not.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from typing import Any, Final

from audit_logging.api.errors import BadParameterError

MAX_CURSOR_LENGTH: Final = 256
_VERSION: Final = 1
# base64url without padding; the OpenAPI document states it as the pattern of the parameter.
CURSOR_PATTERN: Final = "[A-Za-z0-9_-]+"
_BASE64URL_RE: Final = re.compile(CURSOR_PATTERN)
_UUID_RE: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAX_OFFSET: Final = 10**12
_MAX_NANOS: Final = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Cursor:
    timestamp_ns: int
    log_id: str
    offset: int

    def search_after(self) -> list[Any]:
        return [self.timestamp_ns, self.log_id]


def encode_cursor(cursor: Cursor) -> str:
    payload = {"v": _VERSION, "t": cursor.timestamp_ns, "id": cursor.log_id, "o": cursor.offset}
    raw = json.dumps(payload, separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor ``text`` stands for; :class:`BadParameterError` for anything we did not make."""
    if len(text) > MAX_CURSOR_LENGTH or not _BASE64URL_RE.fullmatch(text):
        raise _bad()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode("ascii"))
    except (binascii.Error, ValueError):
        raise _bad() from None
    if not isinstance(data, dict) or set(data) != {"v", "t", "id", "o"} or data["v"] != _VERSION:
        raise _bad()
    timestamp, log_id, offset = data["t"], data["id"], data["o"]
    if not (_is_int(timestamp) and -_MAX_NANOS - 1 <= timestamp <= _MAX_NANOS):
        raise _bad()
    if not (isinstance(log_id, str) and _UUID_RE.fullmatch(log_id)):
        raise _bad()
    if not (_is_int(offset) and 1 <= offset <= _MAX_OFFSET):
        raise _bad()
    return Cursor(timestamp_ns=timestamp, log_id=log_id, offset=offset)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad() -> BadParameterError:
    return BadParameterError("cursor", "is not a cursor this API returned in 'next'")
