"""The test project's settings with the README's Django settings block run over them (the
block is the README's text, executed: tests/test_readme_recipes.py::test_django_recipe)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.django_project.settings import *  # noqa: F403

_README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.search(
    r"<!-- recipe: django-settings -->\s*```python\n(.*?)```", _README.read_text(), re.S
)
assert _BLOCK, "README.md has no recipe 'django-settings'"
exec(compile(_BLOCK.group(1), "<README recipe django-settings>", "exec"))

ROOT_URLCONF = "tests.recipes.django_urls"
