"""Each setting is declared once (audit_logging.settings): the README's table is made from it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from audit_logging import settings

README = Path(__file__).resolve().parents[1] / "README.md"
_TABLE = re.compile(r"<!-- settings: [^\n]*-->\n(.*?)<!-- /settings -->", re.DOTALL)


def test_the_readmes_settings_table_is_the_one_the_declarations_make() -> None:
    found = _TABLE.search(README.read_text(encoding="utf-8"))
    assert found, "README.md lost its generated settings table"
    assert found.group(1) == settings.markdown_table(), (
        "README.md's settings table is stale: paste audit_logging.settings.markdown_table() "
        "between its markers"
    )


def test_every_setting_has_a_row_and_a_meaning() -> None:
    table = settings.markdown_table()
    for field in dataclasses.fields(settings.Settings):
        spec = field.metadata["spec"]
        assert f"| `{spec.env}` |" in table
        assert spec.doc.strip(), f"{spec.env} has no meaning in the README's table"


def test_a_secrets_default_is_never_shown_unless_it_is_the_public_guest_account() -> None:
    for field in dataclasses.fields(settings.Settings):
        spec = field.metadata["spec"]
        if spec.secret:
            assert spec.shown in ("", "guest"), spec.env
