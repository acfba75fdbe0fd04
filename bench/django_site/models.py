from __future__ import annotations

from django.db import models


class Customer(models.Model):
    """A customer row as an app has one: the view bumps ``visits`` and ``last_seen``."""

    name = models.CharField(max_length=200)
    email = models.EmailField()
    plan = models.CharField(max_length=20, default="free")
    visits = models.IntegerField(default=0)
    last_seen = models.DateTimeField(null=True)

    # Declared: the type checker's Django settings are the test project's, without this app.
    objects: models.Manager[Customer] = models.Manager()

    def __str__(self) -> str:
        return self.name
