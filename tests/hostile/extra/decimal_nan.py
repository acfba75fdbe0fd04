"""Decimal NaN, sNaN and a huge exponent: str() works, float() would not."""

import decimal
from typing import Any

EXTRA: dict[str, Any] = {
    "action": "PAY",
    "amount": decimal.Decimal("NaN"),
    "extra": {"signal": decimal.Decimal("sNaN"), "big": decimal.Decimal("1e999999")},
}
EXPECT = {"extra": {"amount": "NaN", "signal": "sNaN", "big": "1E+999999"}}
