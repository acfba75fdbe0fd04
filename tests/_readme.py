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
