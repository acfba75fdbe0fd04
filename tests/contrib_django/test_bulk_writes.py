"""Bulk writes of registered models (bulk_create, bulk_update, QuerySet.update and
QuerySet.delete), on SQLite and PostgreSQL: one record per row with old and new values, or
one summary over BULK_ROW_LIMIT."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import pytest
from django.db import models, transaction
from django.db.models import F

from audit_logging.contrib.django import AuditedQuerySetMixin
from tests.django_project.shop.models import Customer, Invoice, InvoiceQuerySet, Order

Records = list[dict[str, Any]]


def test_bulk_create_records_each_row(db: str, records: Records) -> None:
    records.clear()
    made = Customer.objects.using(db).bulk_create(
        [Customer(name=f"c{n}", api_secret="hidden") for n in range(3)]
    )
    assert [r["action"] for r in records] == ["CREATE"] * 3
    assert [r["object_id"] for r in records] == [str(c.pk) for c in made]
    assert records[0]["changes"]["name"] == [None, "c0"]
    assert records[0]["changes"]["api_secret"] == [None, "********"]
    assert records[0]["extra"] == {"bulk": "bulk_create"}


def test_bulk_update_records_old_and_new_values_of_rows_that_changed(
    db: str, records: Records
) -> None:
    made = [Customer.objects.using(db).create(name=f"c{n}", balance=n) for n in range(3)]
    records.clear()
    made[0].name = "renamed"
    made[1].balance = F("balance") + 10  # an expression: the new value is read back
    Customer.objects.using(db).bulk_update(made, ["name", "balance"])
    assert len(records) == 2  # the third did not change
    by_id = {r["object_id"]: r for r in records}
    assert set(by_id) == {str(made[0].pk), str(made[1].pk)}
    assert by_id[str(made[0].pk)]["changes"] == {"name": ["c0", "renamed"]}
    assert by_id[str(made[1].pk)]["changes"] == {"balance": ["1.00", "11.00"]}
    assert by_id[str(made[1].pk)]["extra"] == {"bulk": "bulk_update"}


def test_queryset_update_records_each_row_that_changed(db: str, records: Records) -> None:
    ada = Customer.objects.using(db).create(name="Ada", balance=5)
    grace = Customer.objects.using(db).create(name="Grace", balance=7)
    Customer.objects.using(db).create(name="Linus", balance=9)
    records.clear()
    count = Customer.objects.using(db).filter(balance__lt=8).update(balance=F("balance") * 2)
    assert count == 2
    assert {r["object_id"]: r["changes"] for r in records} == {
        str(ada.pk): {"balance": ["5.00", "10.00"]},
        str(grace.pk): {"balance": ["7.00", "14.00"]},
    }
    assert {r["object_repr"] for r in records} == {"Ada", "Grace"}
    assert records[0]["extra"] == {"bulk": "update"}

    records.clear()
    assert Customer.objects.using(db).filter(pk=ada.pk).update(name="Ada") == 1
    assert records == []  # matched, unchanged


def test_queryset_delete_records_each_row_and_its_cascade(db: str, records: Records) -> None:
    ada = Customer.objects.using(db).create(name="Ada")
    order = Order.objects.using(db).create(customer=ada, total=3)
    Customer.objects.using(db).create(name="Grace")
    records.clear()
    assert Customer.objects.using(db).filter(name="Ada").delete() == (
        2, {"shop.Customer": 1, "shop.Order": 1}
    )
    by_type = {r["object_type"]: r for r in records}
    assert by_type["shop.Customer"]["object_id"] == str(ada.pk)
    assert by_type["shop.Customer"]["changes"]["name"] == ["Ada", None]
    assert by_type["shop.Customer"]["extra"] == {"bulk": "delete"}
    assert by_type["shop.Order"]["object_id"] == str(order.pk)
    assert by_type["shop.Order"]["extra"] == {"bulk": "delete cascaded from shop.Customer"}
    assert len(records) == 2


def test_over_the_row_limit_one_summary_names_the_filter_and_count(
    db: str, records: Records, options: dict[str, object]
) -> None:
    options["BULK_ROW_LIMIT"] = 2
    Customer.objects.using(db).bulk_create([Customer(name=f"c{n}") for n in range(3)])
    (created,) = records
    assert created["extra"] == {"bulk": "bulk_create", "count": 3, "filter": "", "row_limit": 2}
    assert created["object_id"] is None

    records.clear()
    count = Customer.objects.using(db).filter(name__startswith="c").update(notes="secret note")
    assert count == 3
    (updated,) = records
    assert updated["action"] == "UPDATE"
    assert updated["object_type"] == "shop.Customer"
    assert updated["extra"]["count"] == 3
    assert updated["extra"]["fields"] == ["notes"]
    assert "name" in updated["extra"]["filter"] and "LIKE" in updated["extra"]["filter"].upper()
    assert "secret note" not in str(updated) and "'c" not in updated["extra"]["filter"]

    records.clear()
    Customer.objects.using(db).bulk_update(list(Customer.objects.using(db).all()), ["name"])
    (bulk_updated,) = records
    assert bulk_updated["extra"]["count"] == 3

    records.clear()
    Customer.objects.using(db).all().delete()
    (deleted,) = records
    assert deleted["action"] == "DELETE"
    assert deleted["extra"]["count"] == 3
    assert deleted["extra"]["filter"] == "(all rows)"


def test_a_custom_manager_and_queryset_keep_working_and_are_captured(
    db: str, records: Records
) -> None:
    Invoice.objects.using(db).create(number="INV-1", amount="10.00")
    Invoice.objects.using(db).create(number="INV-2", amount="20.00", paid=True)
    assert isinstance(Invoice.objects.get_queryset(), InvoiceQuerySet)
    assert isinstance(Invoice.objects.get_queryset(), AuditedQuerySetMixin)
    assert [i.number for i in Invoice.objects.using(db).unpaid()] == ["INV-1"]
    records.clear()
    assert Invoice.objects.using(db).unpaid().update(paid=True) == 1
    (record,) = records
    assert record["object_type"] == "shop.Invoice"
    assert record["object_repr"] == "INV-1"
    assert record["changes"] == {"paid": [False, True]}
    # The manager still deconstructs, and the queryset pickles, as the app's own classes.
    assert Invoice.objects.deconstruct()[1] == "tests.django_project.shop.models.InvoiceManager"
    again = pickle.loads(pickle.dumps(Invoice.objects.using(db).unpaid()))
    assert isinstance(again, InvoiceQuerySet) and isinstance(again, AuditedQuerySetMixin)


def test_the_mixin_covers_a_queryset_built_elsewhere(db: str, records: Records) -> None:
    class CustomerQuerySet(AuditedQuerySetMixin, models.QuerySet[Customer]):
        pass

    Customer.objects.using(db).create(name="Ada")
    records.clear()
    CustomerQuerySet(Customer, using=db).filter(name="Ada").update(name="Ada L.")
    (record,) = records
    assert record["changes"] == {"name": ["Ada", "Ada L."]}


def test_a_bulk_write_in_a_rolled_back_transaction_records_nothing(
    db: str, records: Records
) -> None:
    Customer.objects.using(db).create(name="Ada", balance=1)
    records.clear()
    with pytest.raises(RuntimeError):
        update_then_fail(db)
    assert records == []
    assert Customer.objects.using(db).get().balance == Decimal("1.00")


def update_then_fail(db: str) -> None:
    with transaction.atomic(using=db):
        Customer.objects.using(db).update(balance=2)
        raise RuntimeError


def test_bulk_create_ignoring_conflicts_says_rows_may_be_skipped(
    db: str, records: Records
) -> None:
    from tests.django_project.shop.models import Tag

    Tag.objects.using(db).create(name="red")
    records.clear()
    Tag.objects.using(db).bulk_create([Tag(name="red"), Tag(name="blue")], ignore_conflicts=True)
    assert {r["object_repr"] for r in records} == {"red", "blue"}
    assert all(r["extra"] == {"bulk": "bulk_create", "on_conflict": "ignore"} for r in records)
    assert Tag.objects.using(db).count() == 2


def test_a_cascade_or_a_many_to_many_change_over_the_limit_is_one_summary(
    db: str, records: Records, options: dict[str, object]
) -> None:
    from tests.django_project.shop.models import Tag

    options["BULK_ROW_LIMIT"] = 2
    ada = Customer.objects.using(db).create(name="Ada")
    Order.objects.using(db).bulk_create([Order(customer=ada, total=n) for n in range(3)])
    tags = [Tag.objects.using(db).create(name=f"t{n}") for n in range(3)]
    records.clear()
    ada.tags.add(*tags)
    customer_side, tag_side = records
    assert customer_side["object_id"] == str(ada.pk)  # one customer: recorded as a row
    assert customer_side["changes"] == {"tags": [[], sorted(t.pk for t in tags)]}
    assert tag_side["object_type"] == "shop.Tag" and tag_side["object_id"] is None
    assert tag_side["extra"]["count"] == 3
    assert tag_side["extra"]["bulk"] == "add on customers"

    records.clear()
    Customer.objects.using(db).filter(pk=ada.pk).delete()
    by_type = {r["object_type"]: r for r in records}
    assert len(records) == 2
    assert by_type["shop.Customer"]["object_id"] == str(ada.pk)
    summary = by_type["shop.Order"]
    assert summary["object_id"] is None
    assert summary["extra"]["bulk"] == "delete cascaded from shop.Customer"
    assert summary["extra"]["count"] == 3


@pytest.mark.parametrize("record_rolled_back", [False, True])
def test_a_delete_failing_half_way_is_recorded_only_as_rolled_back(
    db: str, records: Records, options: dict[str, object], record_rolled_back: bool
) -> None:
    from django.db.models.signals import post_delete

    options["RECORD_ROLLED_BACK"] = record_rolled_back
    ada = Customer.objects.using(db).create(name="Ada")
    Order.objects.using(db).create(customer=ada, total=1)

    def fail(**kwargs: Any) -> None:
        raise RuntimeError("a receiver of the app fails")

    post_delete.connect(fail, sender=Customer, dispatch_uid="test-fail-on-delete")
    try:
        records.clear()
        with pytest.raises(RuntimeError):
            Customer.objects.using(db).filter(pk=ada.pk).delete()
    finally:
        post_delete.disconnect(sender=Customer, dispatch_uid="test-fail-on-delete")
    assert Order.objects.using(db).count() == 1  # the cascade rolled back too
    if record_rolled_back:
        assert {(r["object_type"], r["extra"]["rolled_back"]) for r in records} == {
            ("shop.Order", True), ("shop.Customer", True)
        }
    else:
        assert records == []


def test_a_rolled_back_bulk_update_is_recorded_marked_with_the_option(
    db: str, records: Records, options: dict[str, object]
) -> None:
    options["RECORD_ROLLED_BACK"] = True
    Customer.objects.using(db).create(name="Ada", balance=1)
    records.clear()
    with pytest.raises(RuntimeError):
        update_then_fail(db)
    (record,) = records
    assert record["changes"] == {"balance": ["1.00", "2.00"]}
    assert record["extra"] == {"bulk": "update", "rolled_back": True}
