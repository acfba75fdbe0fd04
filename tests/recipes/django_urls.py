"""URLs of the Django project the README's Django recipe is tested with: the README's view
(its text, executed) and the test project's login views."""

from __future__ import annotations

import re
import types
from pathlib import Path

from django.urls import URLPattern, URLResolver, include, path

README = Path(__file__).resolve().parents[2] / "README.md"


def _recipe_module(name: str) -> types.ModuleType:
    found = re.search(rf"<!-- recipe: {name} -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"README.md has no recipe {name!r}"
    module = types.ModuleType(f"recipe_{name.replace('-', '_')}")
    exec(compile(found.group(1), f"<README recipe {name}>", "exec"), module.__dict__)
    return module


views = _recipe_module("django-view")

urlpatterns: list[URLPattern | URLResolver] = [
    path("orders/<str:order_id>/refund", views.refund_order),
    path("auth/", include("tests.django_project.shop.views_auth")),
]
