"""How a field's value is shown in ``changes``: JSON, as the column holds it, bounded."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from django.db import models

from audit_logging.contrib.django.changes import VALUE_LIMIT, json_value, same, sorted_keys


def field(kind: models.Field[Any, Any]) -> models.Field[Any, Any]:
    kind.set_attributes_from_name("value")
    return kind


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        (models.DecimalField(max_digits=9, decimal_places=2), decimal.Decimal("3"), "3.00"),
        (models.DecimalField(max_digits=9, decimal_places=2), decimal.Decimal("NaN"), "NaN"),
        (
            models.DateTimeField(),
            dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            "2026-01-02T03:04:05.000006+00:00",
        ),
        (models.DateField(), dt.date(2026, 1, 2), "2026-01-02"),
        (models.TimeField(), dt.time(3, 4), "03:04:00"),
        (models.DurationField(), dt.timedelta(days=1, seconds=5), "P1DT00H00M05S"),
        (
            models.UUIDField(),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
        ),
        (models.BooleanField(), True, True),
        (models.IntegerField(), 2**63, str(2**63)),
        (models.JSONField(), {"b": [1, 2], "a": None}, {"a": None, "b": [1, 2]}),
        (models.CharField(), None, None),
    ],
)
def test_values_are_plain_json(column: models.Field[Any, Any], value: Any, shown: Any) -> None:
    assert json_value(field(column), value) == (shown, False)


def test_a_long_value_is_cut_and_says_so() -> None:
    shown, cut = json_value(field(models.TextField()), "é" * (VALUE_LIMIT + 1))
    assert cut
    assert shown == "é" * VALUE_LIMIT + f"… <{VALUE_LIMIT + 1} characters: cut>"


def test_what_was_assigned_and_what_is_stored_compare_as_stored() -> None:
    price = field(models.DecimalField(max_digits=9, decimal_places=2))
    assert same(price, decimal.Decimal("10.00"), "10")
    assert not same(price, decimal.Decimal("10.00"), "10.01")
    long_text = field(models.TextField())
    # Cut the same way when shown, but different values: a change.
    assert not same(long_text, "x" * VALUE_LIMIT + "a", "x" * VALUE_LIMIT + "b")


def test_keys_sort_as_numbers_and_mixed_keys_still_sort() -> None:
    assert sorted_keys({10, 9, 100}) == [9, 10, 100]
    assert sorted_keys({1, "a"}) == [1, "a"]
