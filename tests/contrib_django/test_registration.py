"""register(): its arguments, its decorator form, its options, and the package importing
before Django is set up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit_logging.contrib.django import register, unregister
from audit_logging.contrib.django.registry import registration
from audit_logging.errors import ConfigurationError
from tests.django_project.shop.models import Customer, Order

ROOT = Path(__file__).resolve().parents[2]
Records = list[dict[str, Any]]


def test_the_package_imports_before_django_is_set_up() -> None:
    script = (
        "import sys, audit_logging.contrib.django as app\n"
        "assert 'django.db.models' not in sys.modules, 'imported the model layer early'\n"
        "assert callable(app.register)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"include_fields": ["name", "nickname"]}, "include_fields"),
        ({"exclude_fields": ["balanse"]}, "exclude_fields"),
        ({"mask_fields": ["password"]}, "mask_fields"),
        ({"mask_fields": "api_secret"}, "mask_fields"),
    ],
)
def test_an_unknown_field_is_refused_by_name(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        register(Customer, **arguments)
    assert "shop.Customer" in str(caught.value)
    assert registration(Customer) is None


def test_a_bad_option_is_refused_at_registration(options: dict[str, object]) -> None:
    options["BULK_ROW_LIMIT"] = 0
    with pytest.raises(ConfigurationError, match=r"AUDIT_LOGGING\['BULK_ROW_LIMIT'\]"):
        register(Order)
    options["BULK_ROW_LIMIT"] = 10
    options["RECORD_ROLLED_BACK"] = "yes"
    with pytest.raises(ConfigurationError, match="RECORD_ROLLED_BACK"):
        register(Order)
    assert registration(Order) is None


def test_register_as_a_decorator_returns_the_model() -> None:
    try:
        assert register(Order) is Order
        assert register(mask_fields=["total"])(Order) is Order
        entry = registration(Order)
        assert entry is not None and entry.tracked.masked == {"total"}
    finally:
        unregister(Order)
    assert registration(Order) is None


def test_include_and_exclude_choose_the_fields(db: str, records: Records) -> None:
    register(Customer, include_fields=["name", "email", "tags"], exclude_fields=["email"])
    records.clear()
    customer = Customer.objects.using(db).create(name="Ada", email="a@example.com")
    customer.email = "b@example.com"
    customer.save(using=db)  # email is excluded: nothing recorded
    (created,) = records
    assert created["changes"] == {"name": [None, "Ada"]}


def test_an_included_auto_now_field_shows_only_beside_another_change(
    db: str, records: Records
) -> None:
    register(Customer, include_fields=["name", "updated_at"])
    customer = Customer.objects.using(db).create(name="Ada")
    records.clear()
    customer.save(using=db)
    assert records == []
    customer.name = "Grace"
    customer.save(using=db)
    (updated,) = records
    assert set(updated["changes"]) == {"name", "updated_at"}


DECORATED_MODELS = '''
from django.db import models

from audit_logging.contrib.django import register


# "authors" is the reverse accessor of a model not defined yet: known once Django is ready.
@register(include_fields=["title", "authors"])
class Book(models.Model):
    title = models.CharField(max_length=50)
    pages = models.IntegerField(default=0)


@register(mask_fields=["secret"])
class Author(models.Model):
    name = models.CharField(max_length=50)
    secret = models.CharField(max_length=50)
    books = models.ManyToManyField(Book, related_name="authors")
'''

DECORATED_RUN = '''
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "decorated_settings"
import django
django.setup()
from django.db import connection
from audit_logging.testing import capture_audit_records
from decorated_app.models import Author, Book
with connection.schema_editor() as editor:
    editor.create_model(Book)
    editor.create_model(Author)
with capture_audit_records() as records:
    book = Book.objects.create(title="Dune", pages=412)
    author = Author.objects.create(name="Frank", secret="s3cret")
    author.books.add(book)
print(json.dumps(records))
'''


def test_the_decorator_in_models_py_before_django_is_ready(tmp_path: Path) -> None:
    import json

    app = tmp_path / "decorated_app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(DECORATED_MODELS)
    (tmp_path / "decorated_settings.py").write_text(
        "SECRET_KEY = 'x'\nUSE_TZ = True\nINSTALLED_APPS = ['decorated_app']\n"
        "DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", DECORATED_RUN, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("CREATE", "decorated_app.Book"),
        ("CREATE", "decorated_app.Author"),
        ("UPDATE", "decorated_app.Author"),
        ("UPDATE", "decorated_app.Book"),
    ]
    assert records[0]["changes"] == {"title": [None, "Dune"]}  # pages not included
    assert records[1]["changes"]["secret"] == [None, "********"]
    assert records[2]["changes"] == {"books": [[], [1]]}
    assert records[3]["changes"] == {"authors": [[], [1]]}


LATE_REGISTRATION = '''
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"
os.environ["DJANGO_TEST_SQLITE"] = sys.argv[1]
from tests.django_project.bootstrap import migrate
migrate("default")
from audit_logging.contrib.django import register
from audit_logging.testing import capture_audit_records
from tests.django_project.shop.models import Customer, Order
ada = Customer.objects.create(name="Ada")
Order.objects.create(customer=ada, total=1)
assert ada.orders.count() == 1  # Django makes and keeps the related manager's class
register(Order)
with capture_audit_records() as records:
    ada.orders.update(status="paid")
print(json.dumps(records))
'''


def test_related_managers_made_before_registration_are_audited(tmp_path: Path) -> None:
    import json

    done = subprocess.run(
        [sys.executable, "-c", LATE_REGISTRATION, str(tmp_path / "db.sqlite3")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["changes"] == {"status": ["open", "paid"]}
