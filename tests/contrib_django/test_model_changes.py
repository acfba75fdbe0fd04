"""Saves, deletes and many-to-many changes of registered models, on SQLite and PostgreSQL,
seen through ``audit_logging.testing.capture_audit_records``."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from django.db import transaction

from audit_logging.contrib.django.changes import MASK
from tests.django_project.shop.models import Customer, Order, Tag

Records = list[dict[str, Any]]


def only(records: list[dict[str, Any]], object_type: str) -> list[dict[str, Any]]:
    return [r for r in records if r["object_type"] == object_type]


def create_then_fail(db: str, name: str) -> None:
    with transaction.atomic(using=db):
        Customer.objects.using(db).create(name=name)
        raise RuntimeError


def test_create_records_every_tracked_field_masked_where_asked(db: str, records: Records) -> None:
    records.clear()
    customer = Customer.objects.using(db).create(
        name="Ada", email="ada@example.com", api_secret="s3cret", balance=decimal.Decimal("12.5")
    )
    (record,) = records
    assert record["action"] == "CREATE"
    assert record["object_type"] == "shop.Customer"
    assert record["object_id"] == str(customer.pk)
    assert record["object_repr"] == "Ada"
    assert record["changes"] == {
        "name": [None, "Ada"],
        "email": [None, "ada@example.com"],
        "api_secret": [None, MASK],
        "notes": [None, ""],
        "balance": [None, "12.50"],
    }
    assert "s3cret" not in str(record)


def test_update_records_only_the_fields_that_changed(db: str, records: Records) -> None:
    customer = Customer.objects.using(db).create(name="Ada", balance=1, api_secret="old")
    records.clear()
    customer.name = "Ada Lovelace"
    customer.balance = decimal.Decimal("1.00")  # the same stored value
    customer.api_secret = "new"
    customer.save(using=db)
    (record,) = records
    assert record["action"] == "UPDATE"
    assert record["changes"] == {"name": ["Ada", "Ada Lovelace"], "api_secret": [MASK, MASK]}
    assert record["change_message"] == "Changed name, api_secret"
    assert "new" not in str(record["changes"])


def test_a_save_that_changes_nothing_records_nothing(db: str, records: Records) -> None:
    customer = Customer.objects.using(db).create(name="Ada")
    before = Customer.objects.using(db).get(pk=customer.pk).updated_at
    records.clear()
    customer.save(using=db)  # updated_at (auto_now) changes, nothing else
    Customer.objects.using(db).get(pk=customer.pk).save(using=db)
    assert Customer.objects.using(db).get(pk=customer.pk).updated_at > before
    assert records == []


def test_update_fields_limits_what_is_read_and_compared(db: str, records: Records) -> None:
    customer = Customer.objects.using(db).create(name="Ada", email="a@example.com")
    records.clear()
    customer.name = "Grace"
    customer.email = "not-saved@example.com"
    customer.save(using=db, update_fields=["name"])
    customer.save(using=db, update_fields=["updated_at"])  # no recorded field: no record
    (record,) = records
    assert record["changes"] == {"name": ["Ada", "Grace"]}


def test_a_foreign_key_is_its_primary_key_and_delete_records_old_values(
    db: str, records: Records
) -> None:
    customer = Customer.objects.using(db).create(name="Ada")
    other = Customer.objects.using(db).create(name="Grace")
    records.clear()
    order = Order.objects.using(db).create(customer=customer, total="9.99")
    order.customer = other
    order.save(using=db)
    order.delete()
    create, update, delete = only(records, "shop.Order")
    assert create["changes"]["customer"] == [None, customer.pk]
    assert create["changes"]["total"] == [None, "9.99"]
    assert update["changes"] == {"customer": [customer.pk, other.pk]}
    assert delete["action"] == "DELETE"
    assert delete["object_id"] == update["object_id"] == create["object_id"]
    assert delete["changes"] == {
        "customer": [other.pk, None], "total": ["9.99", None], "status": ["open", None]
    }


def test_deleting_an_instance_records_its_cascade(db: str, records: Records) -> None:
    customer = Customer.objects.using(db).create(name="Ada")
    orders = [Order.objects.using(db).create(customer=customer, total=n) for n in (1, 2)]
    records.clear()
    customer.delete()
    assert sorted(r["object_id"] for r in only(records, "shop.Order")) == sorted(
        str(o.pk) for o in orders
    )
    assert [r["action"] for r in records] == ["DELETE"] * 3


def test_many_to_many_add_remove_clear_from_both_sides(db: str, records: Records) -> None:
    customer = Customer.objects.using(db).create(name="Ada")
    red, blue, green = (Tag.objects.using(db).create(name=n) for n in ("red", "blue", "green"))
    records.clear()
    customer.tags.add(red, blue)
    by_type = {r["object_type"]: r for r in only(records, "shop.Customer")}
    assert by_type["shop.Customer"]["changes"] == {"tags": [[], sorted([red.pk, blue.pk])]}
    assert by_type["shop.Customer"]["extra"]["m2m"] == "add"
    tags = {r["object_id"]: r for r in only(records, "shop.Tag")}
    assert set(tags) == {str(red.pk), str(blue.pk)}
    assert tags[str(red.pk)]["changes"] == {"customers": [[], [customer.pk]]}
    assert tags[str(red.pk)]["object_repr"] == "red"

    records.clear()
    green.customers.add(customer)  # from the other side
    customer.tags.remove(red)
    add, remove = only(records, "shop.Customer")
    all_three = sorted([red.pk, blue.pk, green.pk])
    assert add["changes"] == {"tags": [sorted([red.pk, blue.pk]), all_three]}
    assert remove["changes"] == {"tags": [all_three, sorted([blue.pk, green.pk])]}
    assert remove["extra"] == {"m2m": "remove", "field": "tags", "pks": [red.pk], "count": 1}

    records.clear()
    customer.tags.clear()
    customer.tags.remove(red)  # not related any more: nothing to record
    (cleared,) = only(records, "shop.Customer")
    assert cleared["changes"] == {"tags": [sorted([blue.pk, green.pk]), []]}
    assert {r["object_id"] for r in only(records, "shop.Tag")} == {str(blue.pk), str(green.pk)}


def test_nothing_is_recorded_before_commit_nor_after_rollback(db: str, records: Records) -> None:
    records.clear()
    with transaction.atomic(using=db):
        Customer.objects.using(db).create(name="kept")
        assert records == []  # not yet: the transaction may still roll back
        try:
            with transaction.atomic(using=db):
                Customer.objects.using(db).create(name="inner, rolled back")
                raise RuntimeError
        except RuntimeError:
            pass
    with pytest.raises(RuntimeError):
        create_then_fail(db, "outer, rolled back")
    assert [r["object_repr"] for r in records] == ["kept"]


def test_rolled_back_changes_are_recorded_and_marked_with_the_option(
    db: str, records: Records, options: dict[str, object]
) -> None:
    options["RECORD_ROLLED_BACK"] = True
    records.clear()
    with transaction.atomic(using=db):
        Customer.objects.using(db).create(name="kept")
        try:
            with transaction.atomic(using=db):
                Customer.objects.using(db).create(name="inner")
                raise RuntimeError
        except RuntimeError:
            pass
    with pytest.raises(RuntimeError):
        create_then_fail(db, "outer")
    marked = {r["object_repr"]: (r.get("extra") or {}).get("rolled_back") for r in records}
    assert marked == {"kept": None, "inner": True, "outer": True}
    assert Customer.objects.using(db).filter(name__in=["inner", "outer"]).count() == 0


def test_an_unregistered_model_is_not_recorded(db: str, records: Records) -> None:
    from audit_logging.contrib.django import unregister

    unregister(Order)
    customer = Customer.objects.using(db).create(name="Ada")
    records.clear()
    Order.objects.using(db).create(customer=customer, total=1)
    Order.objects.using(db).filter(customer=customer).update(total=2)
    Order.objects.using(db).all().delete()
    assert records == []


def test_a_proxy_model_of_a_registered_model_is_recorded_as_it(
    db: str, records: Records
) -> None:
    from django.test.utils import isolate_apps

    with isolate_apps("tests.django_project.shop"):

        class VipCustomer(Customer):
            class Meta:
                proxy = True
                app_label = "shop"

    records.clear()
    vip = VipCustomer.objects.using(db).create(name="Vip")
    vip.name = "Very"
    vip.save(using=db)
    VipCustomer.objects.using(db).filter(pk=vip.pk).update(notes="n")
    vip.delete()
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("CREATE", "shop.Customer"),
        ("UPDATE", "shop.Customer"),
        ("UPDATE", "shop.Customer"),
        ("DELETE", "shop.Customer"),
    ]
    assert records[2]["extra"] == {"bulk": "update"}


def test_old_values_cost_one_read_by_key_and_none_for_a_new_row(
    db: str, records: Records
) -> None:
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connections[db]) as queries:
        customer = Customer.objects.using(db).create(name="Ada")
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    customer.name = "Grace"
    with CaptureQueriesContext(connections[db]) as queries:
        customer.save(using=db, update_fields=["name"])
    read, write = (q["sql"] for q in queries.captured_queries)
    assert read.startswith("SELECT") and "name" in read and "email" not in read
    assert write.startswith("UPDATE")


def test_in_a_test_case_transaction_capture_on_commit_callbacks_records(
    db: str, records: Records
) -> None:
    from django.test import TestCase

    records.clear()
    with transaction.atomic(using=db):  # as TestCase wraps each test: never committed
        with TestCase.captureOnCommitCallbacks(using=db, execute=True):
            Customer.objects.using(db).create(name="in a test")
        transaction.set_rollback(True, using=db)
    assert [r["object_repr"] for r in records] == ["in a test"]
    assert not Customer.objects.using(db).filter(name="in a test").exists()


def test_old_values_read_by_the_cached_query_are_converted_as_the_orm_does(
    db: str, records: Records
) -> None:
    from tests.django_project.shop.models import Invoice

    invoice = Invoice.objects.using(db).create(number="INV-1", amount="10.00")
    records.clear()
    for paid, amount in ((True, "12.00"), (False, "12.5")):  # the second read is cached
        invoice.paid = paid
        invoice.amount = amount
        invoice.save(using=db)
    first, second = records
    assert first["changes"] == {"amount": ["10.00", "12.00"], "paid": [False, True]}
    assert second["changes"] == {"amount": ["12.00", "12.50"], "paid": [True, False]}


def test_many_to_many_set_and_a_masked_relation(db: str, records: Records) -> None:
    from audit_logging.contrib.django import register

    register(Customer, mask_fields=["api_secret", "tags"])
    customer = Customer.objects.using(db).create(name="Ada")
    red, blue = (Tag.objects.using(db).create(name=n) for n in ("red", "blue"))
    customer.tags.add(red)
    records.clear()
    customer.tags.set([blue])  # a remove, then an add
    removed, added = only(records, "shop.Customer")
    assert removed["changes"] == {"tags": [MASK, MASK]}
    assert (removed["extra"]["m2m"], added["extra"]["m2m"]) == ("remove", "add")
    tag_side = {r["object_id"]: r["changes"] for r in only(records, "shop.Tag")}
    assert tag_side == {
        str(red.pk): {"customers": [[customer.pk], []]},
        str(blue.pk): {"customers": [[], [customer.pk]]},
    }
