"""extra= trying to forge the record's own bookkeeping: truncated, schema_version, log_id."""

from typing import Any

EXTRA: dict[str, Any] = {
    "action": "DELETE",
    "truncated": ["not-a-field", {"x": 1}],
    "schema_version": 99,
    "log_id": "00000000-0000-0000-0000-000000000000\n",
    "source": ["a"],
    "ip_address": "999.1.1.1",
}
EXPECT = {"reported": "truncated"}
