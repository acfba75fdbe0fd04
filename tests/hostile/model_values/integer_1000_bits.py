"""An integer of 1,000 bits from a custom field: past 2**63 readers (OpenSearch's long,
JavaScript) lose precision or refuse it. Shown as a string of its digits."""

from django.db import models

FIELD = models.IntegerField()
VALUE = 2**1000 + 1


def check(shown: object) -> None:
    assert shown == str(2**1000 + 1)
