"""100,000 keys: over the consumer's 10,000 keys per message and any size limit."""

from typing import Any


def make_extra() -> dict[str, Any]:
    return {"action": "IMPORT", "extra": {f"k{i}": i for i in range(100_000)},
            "changes": {f"f{i}": [i, i + 1] for i in range(100_000)}}


EXPECT = {"truncated": ["extra", "changes"], "reported": "items"}
