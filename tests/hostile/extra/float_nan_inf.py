"""NaN and the infinities: JSON has no such numbers; the consumer refuses them."""

from typing import Any

EXTRA: dict[str, Any] = {
    "action": "UPDATE",
    "ratio": float("nan"),
    "extra": {"up": float("inf"), "down": [float("-inf")]},
    "changes": {"score": [float("nan"), 1.0]},
}
EXPECT = {"extra": {"ratio": "nan", "up": "inf", "down": ["-inf"]}, "reported": "JSON cannot hold"}
