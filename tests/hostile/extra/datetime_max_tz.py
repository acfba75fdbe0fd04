"""datetime.max with a time zone west of UTC: OverflowError when converted to UTC."""

import datetime as dt
from typing import Any

WEST = dt.timezone(-dt.timedelta(hours=1))
EXTRA: dict[str, Any] = {
    "action": "UPDATE",
    "timestamp": dt.datetime.max.replace(tzinfo=WEST),
    "when": dt.datetime.max.replace(tzinfo=WEST),
    "extra": {"earliest": dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=1)))},
}
EXPECT = {"extra": {"when": "9999-12-31T23:59:59.999999-01:00"}, "reported": "timestamp"}
