"""The README's map of the code ("How it is built") names modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "audit_logging"


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### How it is built")
    end = text.find("\n## ", start)
    return text[start : end if end > 0 else len(text)]


def test_every_module_the_map_names_exists() -> None:
    named = re.findall(r"`([a-z_/]+\.py)`", _section())
    assert len(named) > 20, "the map of the code is gone from the README"
    missing = [name for name in named if not (PACKAGE / name).is_file()]
    assert not missing, f"README names modules that do not exist: {missing}"
