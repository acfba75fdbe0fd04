"""Properties of the strict decoder, over inputs Hypothesis makes up.

1. Any bytes and any JSON: the decoder returns a record or a Rejection, never raises.
2. Whatever the capture side accepts or repairs, the consumer side accepts unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_logging._decode import Rejection, decode_record
from audit_logging.errors import RecordError
from audit_logging.record import FIELDS, build_record, new_log_id, record_to_json

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
# What an app may hand the handler: JSON values and the Python values it converts.
app_scalars = (
    json_scalars
    | st.floats()
    | st.datetimes(timezones=st.none() | st.just(dt.UTC))
    | st.uuids()
    | st.binary(max_size=8)
    | st.decimals()
    | st.text(alphabet=st.characters(codec=None), max_size=20)
)
app_values = st.recursive(
    app_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3)
    ),
    max_leaves=20,
)


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


@_SETTINGS
@given(st.binary(max_size=2048))
def test_any_bytes_give_a_record_or_a_reason(raw: bytes) -> None:
    assert isinstance(decode_record(raw), (dict, Rejection))


@_SETTINGS
@given(json_values)
def test_any_json_gives_a_record_or_a_reason(value: Any) -> None:
    assert isinstance(decode_record(json.dumps(value).encode()), (dict, Rejection))


@_SETTINGS
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
def test_any_record_shaped_json_gives_a_record_or_a_reason(fields: dict[str, Any]) -> None:
    raw = json.dumps({"action": "X"} | fields).encode()
    assert isinstance(decode_record(raw), (dict, Rejection))


@_SETTINGS
@given(
    st.fixed_dictionaries(
        {"action": st.text(min_size=1, max_size=80).filter(str.strip)},
        optional={
            name: app_values | st.integers(min_value=0, max_value=60).map(deep)
            for name in FIELDS
            if name not in {"action", "log_id", "truncated", "schema_version"}
        },
    )
)
def test_what_capture_accepts_or_repairs_the_consumer_accepts_unchanged(
    fields: dict[str, Any],
) -> None:
    repairs: list[str] = []
    try:
        record = build_record(fields | {"log_id": new_log_id()}, report=repairs.append)
    except RecordError:
        return  # refused at capture: never published
    decoded = decode_record(record_to_json(record))
    assert decoded == record, (decoded, repairs)
