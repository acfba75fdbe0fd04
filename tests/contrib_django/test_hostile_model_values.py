"""Runs ``tests/hostile/model_values/``: each file a field value an app's model may hold.

A file whose ``FIELD`` names a field of ``shop.Customer`` is saved for real (on SQLite and
PostgreSQL, or the ``DATABASES`` it lists), then changed to ``VALUE``: the UPDATE record is
delivered, passes the record's checks, and its new value passes the file's ``check``. A file
whose ``FIELD`` is a field instance holds a value no column of the test project holds: it
goes through the same rendering and then through ``log_audit_event``'s strict checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from audit_logging import log_audit_event
from audit_logging.contrib.django.changes import Rendering, TrackedFields
from tests.contrib_django.model_fixtures import DATABASES
from tests.django_project.bootstrap import migrate
from tests.django_project.shop.models import Customer

CORPUS = Path(__file__).resolve().parents[1] / "hostile" / "model_values"
FILES = sorted(CORPUS.glob("*.py"))


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hostile_model_value_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases() -> list[Any]:
    found = []
    for path in FILES:
        module = load(path)
        if isinstance(module.FIELD, str):
            for alias in getattr(module, "DATABASES", DATABASES):
                found.append(pytest.param(path, alias, id=f"{path.stem}-{alias}"))
        else:
            found.append(pytest.param(path, None, id=path.stem))
    return found


def test_the_corpus_is_not_empty() -> None:
    assert len(FILES) >= 5


@pytest.mark.parametrize(("path", "alias"), cases())
def test_hostile_value_is_recorded_bounded_never_dropped(
    path: Path, alias: str | None, records: list[dict[str, Any]]
) -> None:
    module = load(path)
    if alias is None:
        record = through_rendering(module, records)
    else:
        record = through_a_real_save(module, alias, records)
    module.check(record["changes"]["value" if alias is None else module.FIELD][1])
    if hasattr(module, "check_record"):
        module.check_record(record)


def through_a_real_save(
    module: ModuleType, alias: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    migrate(alias)
    customer = Customer.objects.using(alias).create(name="hostile")
    records.clear()
    setattr(customer, module.FIELD, module.VALUE)
    customer.save(using=alias)
    (record,) = records
    assert record["action"] == "UPDATE"
    assert record["object_id"] == str(customer.pk)
    Customer.objects.using(alias).filter(pk=customer.pk).delete()
    return record


def through_rendering(module: ModuleType, records: list[dict[str, Any]]) -> dict[str, Any]:
    field = module.FIELD
    field.set_attributes_from_name("value")
    shown = Rendering(TrackedFields((field,), frozenset(), frozenset())).value(field, module.VALUE)
    records.clear()
    log_audit_event(action="UPDATE", object_type="hostile", changes={"value": [None, shown]})
    (record,) = records
    assert record["changes"] == {"value": [None, shown]}
    return record
