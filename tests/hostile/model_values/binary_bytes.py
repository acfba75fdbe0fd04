"""Bytes (a BinaryField: a key, a file) cannot be JSON-encoded and may be secret: only their
size is shown."""

from django.db import models

FIELD = models.BinaryField()
VALUE = b"\x00\xff" * 1000


def check(shown: object) -> None:
    assert shown == "<2000 bytes>"
