"""The README's "Model changes" recipe, read from README.md and run in the test project:
its AppConfig.ready() registers the models, and their changes reach the real stream."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import audit_logging
from audit_logging.contrib.django import unregister
from audit_logging.settings import Settings
from tests._stack import stream_records
from tests.django_project import shop
from tests.django_project.shop import models as shop_models
from tests.django_project.shop.models import Customer, Invoice

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.services


def recipe(name: str) -> str:
    match = re.search(
        rf"<!-- recipe: {re.escape(name)} -->\s*```python\n(.*?)```", README.read_text(), re.S
    )
    assert match, f"README.md has no recipe {name!r}"
    return match.group(1)


@pytest.fixture
def recipe_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The recipe as the app's ``shop/apps.py``, ``shop`` being the test project's app."""
    monkeypatch.setitem(sys.modules, "shop", shop)
    monkeypatch.setitem(sys.modules, "shop.models", shop_models)
    module = types.ModuleType("recipe_django_models")
    exec(compile(recipe("django-models"), "<README recipe django-models>", "exec"), module.__dict__)
    yield module
    unregister(Customer)
    unregister(Invoice)


def test_the_model_changes_recipe(
    db: str, recipe_app: types.ModuleType, model_stream: Settings
) -> None:
    recipe_app.ShopConfig("shop", shop).ready()
    customer = Customer.objects.using(db).create(
        name="Ada", notes="left out", api_secret="s3cret"
    )
    customer.notes = "still left out"
    customer.save(using=db)  # only an excluded field changed: nothing recorded
    Invoice.objects.using(db).create(number="INV-1", amount="10.00")
    assert [i.number for i in Invoice.objects.using(db).unpaid()] == ["INV-1"]
    Invoice.objects.using(db).unpaid().update(paid=True)

    assert audit_logging.flush(timeout=30) == 0
    records = stream_records(model_stream, model_stream.rabbitmq_stream_name, 3)
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("CREATE", "shop.Customer"), ("CREATE", "shop.Invoice"), ("UPDATE", "shop.Invoice")
    ]
    assert records[0]["changes"]["api_secret"] == [None, "********"]
    assert "notes" not in records[0]["changes"]
    assert records[2]["changes"] == {"paid": [False, True]}
    assert records[2]["object_repr"] == "INV-1"
