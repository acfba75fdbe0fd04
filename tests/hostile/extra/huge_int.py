"""10**5000: Python refuses to print it (4,300 digits) and JSON readers refuse long numbers."""

from typing import Any

EXTRA: dict[str, Any] = {
    "action": "UPDATE",
    "big": 10**5000,
    "object_id": 10**5000,
    "extra": {"list": [10**400, -(10**5000)]},
}
EXPECT = {"extra_startswith": {"big": "<int of"}, "reported": "integer of"}
