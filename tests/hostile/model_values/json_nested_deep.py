"""A JSONField value nested 500 levels deep: the record's check refuses objects nested past 32
levels, which log_audit_event would raise into the app's commit. Kept as its JSON text."""

from django.db import models

FIELD = models.JSONField()
VALUE: object = []
for _ in range(500):
    VALUE = [VALUE]


def check(shown: object) -> None:
    assert isinstance(shown, str) and shown.startswith("[[[[")
