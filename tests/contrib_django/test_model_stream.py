"""Model changes through the real stack: records published to this test's own RabbitMQ
stream and read back, with the right fields and ``changes``, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import transaction

import audit_logging
from audit_logging.context import RequestContext, bind_context
from audit_logging.settings import Settings
from tests._stack import stream_records
from tests.django_project.shop.models import Customer, Invoice, Order, Tag

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("registered")]


def test_model_changes_arrive_through_the_stream(
    db: str, model_stream: Settings, options: dict[str, object]
) -> None:
    options["RECORD_ROLLED_BACK"] = True
    request = RequestContext(
        user_id="u-7", username="ada", ip_address="203.0.113.9", request_id="req-models"
    )
    with transaction.atomic(using=db), bind_context(request):
        customer = Customer.objects.using(db).create(name="Ada", api_secret="s3cret")
        customer.email = "ada@example.com"
        customer.save(using=db)
        tag = Tag.objects.using(db).create(name="vip")
        customer.tags.add(tag)
        # Committed here, after the request's context ended: the records keep it.
    Order.objects.using(db).bulk_create([Order(customer=customer, total=n) for n in (1, 2)])
    Order.objects.using(db).filter(customer=customer).update(status="paid")
    Invoice.objects.using(db).create(number="INV-9", amount="5.00")
    Invoice.objects.using(db).unpaid().update(paid=True)
    with pytest.raises(RuntimeError):
        rename_then_fail(db, customer)
    Customer.objects.using(db).filter(pk=customer.pk).delete()

    assert audit_logging.flush(timeout=30) == 0
    records = stream_records(model_stream, model_stream.rabbitmq_stream_name, 15)
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("CREATE", "shop.Customer"),
        ("UPDATE", "shop.Customer"),
        ("CREATE", "shop.Tag"),
        ("UPDATE", "shop.Customer"),  # tags added, seen from the customer
        ("UPDATE", "shop.Tag"),  # and from the tag
        ("CREATE", "shop.Order"),
        ("CREATE", "shop.Order"),
        ("UPDATE", "shop.Order"),
        ("UPDATE", "shop.Order"),
        ("CREATE", "shop.Invoice"),
        ("UPDATE", "shop.Invoice"),
        ("UPDATE", "shop.Customer"),  # rolled back, recorded with the option
        ("DELETE", "shop.Order"),  # the cascade of the customer's delete
        ("DELETE", "shop.Order"),
        ("DELETE", "shop.Customer"),
    ]
    create, update, _, tags, tag_side = records[:5]
    for record in (create, update, tags, tag_side):
        assert record["user_id"] == "u-7"
        assert record["username"] == "ada"
        assert record["ip_address"] == "203.0.113.9"
        assert record["request_id"] == "req-models"
    for record in records[5:]:
        assert record["user_id"] is None  # outside the request
    assert create["object_id"] == str(customer.pk)
    assert create["object_repr"] == "Ada"
    assert create["changes"]["api_secret"] == [None, "********"]
    assert update["changes"] == {"email": ["", "ada@example.com"]}
    assert update["change_message"] == "Changed email"
    assert tags["changes"] == {"tags": [[], [tag.pk]]}
    assert tag_side["changes"] == {"customers": [[], [customer.pk]]}
    assert records[5]["changes"]["total"] == [None, "1.00"]
    assert records[7]["changes"] == {"status": ["open", "paid"]}
    assert records[7]["extra"] == {"bulk": "update"}
    assert records[10]["changes"] == {"paid": [False, True]}
    assert records[11]["changes"] == {"name": ["Ada", "Ada (renamed)"]}
    assert records[11]["extra"] == {"rolled_back": True}
    assert records[14]["changes"]["name"] == ["Ada", None]
    assert records[14]["extra"] == {"bulk": "delete"}
    assert "s3cret" not in str(records)


def rename_then_fail(db: str, customer: Customer) -> None:
    with transaction.atomic(using=db):
        customer.name = "Ada (renamed)"
        customer.save(using=db)
        raise RuntimeError
