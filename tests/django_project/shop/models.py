"""Models the change-capture tests register: plain fields, a secret to mask, a foreign key,
a many-to-many, and a model with its own manager and queryset."""

from __future__ import annotations

from typing import Any

from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    api_secret = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    updated_at = models.DateTimeField(auto_now=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="customers")

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    total = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, default="open")

    def __str__(self) -> str:
        return f"Order {self.pk}"


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def unpaid(self) -> InvoiceQuerySet:
        return self.filter(paid=False)


class InvoiceManager(models.Manager["Invoice"]):
    def get_queryset(self) -> InvoiceQuerySet:
        return InvoiceQuerySet(self.model, using=self._db)

    def unpaid(self) -> InvoiceQuerySet:
        return self.get_queryset().unpaid()


class Invoice(models.Model):
    """A model with a custom manager and queryset: registration must keep them working."""

    number = models.CharField(max_length=30, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    paid = models.BooleanField(default=False)

    objects: Any = InvoiceManager()

    def __str__(self) -> str:
        return self.number
