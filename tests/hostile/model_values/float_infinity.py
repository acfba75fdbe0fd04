"""An infinite float (a FloatField): JSON has no such number. Shown as its repr."""

from django.db import models

FIELD = models.FloatField()
VALUE = float("-inf")


def check(shown: object) -> None:
    assert shown == "-inf"
