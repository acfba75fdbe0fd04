"""Each setting is declared once (audit_logging.settings): the README's table is made from it."""

from __future__ import annotations

import dataclasses

from audit_logging import settings
from tests._readme import assert_generated_block_is


def test_the_readmes_settings_table_is_the_one_the_declarations_make() -> None:
    assert_generated_block_is(
        "settings", settings.markdown_table(), "audit_logging.settings.markdown_table"
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
