"""The README's generated blocks: text between ``<!-- name: ... -->`` and ``<!-- /name -->``."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def assert_generated_block_is(name: str, expected: str, made_by: str) -> None:
    pattern = re.compile(rf"<!-- {name}: [^\n]*-->\n(.*?)<!-- /{name} -->", re.DOTALL)
    found = pattern.search(README.read_text(encoding="utf-8"))
    assert found, f"README.md lost its generated {name} table"
    assert found.group(1) == expected, (
        f"README.md's {name} table is stale: paste {made_by}() between its markers"
    )


def command_block(name: str) -> str:
    """The text of the README's fenced block after ``<!-- command: name -->`` (a command
    line or a server's configuration that a test runs as it stands)."""
    pattern = re.compile(rf"<!-- command: {re.escape(name)} -->\n```[a-z]*\n(.*?)```", re.DOTALL)
    found = pattern.search(README.read_text(encoding="utf-8"))
    assert found, f"README.md has no command block {name!r}"
    return found.group(1)
