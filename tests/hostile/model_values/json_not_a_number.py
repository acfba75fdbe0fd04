"""A JSONField value holding NaN and infinity (Python's json writes them, JSON has no such
numbers): kept as a string, never an error."""

from django.db import models

FIELD = models.JSONField()
VALUE = {"ratio": float("nan"), "limit": float("inf")}


def check(shown: object) -> None:
    assert isinstance(shown, str) and "nan" in shown
