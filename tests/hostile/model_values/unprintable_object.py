"""A custom field's value whose __str__ raises: the record says what type it was instead."""

from django.db import models


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


FIELD = models.Field()
VALUE = Unprintable()


def check(shown: object) -> None:
    assert shown == "<unprintable Unprintable>"
