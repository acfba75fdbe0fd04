"""The docs (``docs/*.md``) name files of this repository that exist, so they cannot drift
silently: a path quoted in backticks (``audit_logging/consumer/session.py``, ``tests/hostile/``)
must exist, and one that names a test (``tests/consumer/test_faults.py::test_...``) must still
define it. Relative links between the docs must lead to a file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Quoted text starting with one of these folders is a path in the repository; so is a bare
# file name of these kinds (``README.md``, ``pyproject.toml``), which must be at the top.
ROOTS = frozenset({"audit_logging", "tests", "bench", "devstack", "docs", ".ci"})
ROOT_FILES = (".py", ".md", ".toml")
_FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_PATH = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _docs() -> list[Path]:
    found = sorted(DOCS.glob("*.md"))
    assert found, f"no docs in {DOCS}"
    return found


def _quoted(text: str) -> list[str]:
    """Inline code of a Markdown text (fenced blocks left out)."""
    spans = _FENCED.sub("", text).split("`")[1::2]
    return [span for span in spans if span and not any(c.isspace() for c in span)]


def _repo_reference(span: str) -> tuple[str, str] | None:
    """(path, test name or "") if ``span`` names a file of the repository, else None."""
    path, _, name = span.partition("::")
    if not _PATH.fullmatch(path):
        return None
    if "/" in path:
        return (path, name) if path.split("/")[0] in ROOTS else None
    return (path, name) if path.endswith(ROOT_FILES) else None


def _problem(path: str, name: str) -> str | None:
    target = ROOT / path
    if path.endswith("/"):
        return None if target.is_dir() else "no such folder"
    if not target.is_file():
        return "no such file"
    defines = re.compile(rf"^(?:async )?def {re.escape(name)}\(", re.MULTILINE)
    if name and not defines.search(target.read_text(encoding="utf-8")):
        return f"defines no {name}"
    return None


def test_every_path_the_docs_quote_exists() -> None:
    checked = 0
    broken = []
    for doc in _docs():
        for span in _quoted(doc.read_text(encoding="utf-8")):
            reference = _repo_reference(span)
            if reference is None:
                continue
            checked += 1
            problem = _problem(*reference)
            if problem:
                broken.append(f"{doc.name}: `{span}`: {problem}")
    assert not broken, "the docs quote paths that are gone:\n" + "\n".join(broken)
    # The docs map the code: far fewer paths means this check stopped finding them.
    assert checked > 40, f"only {checked} paths found in {DOCS}"


def test_links_between_the_docs_lead_to_a_file() -> None:
    broken = []
    for doc in _docs():
        for target in _LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("#"):
                continue
            if not (doc.parent / target.partition("#")[0]).exists():
                broken.append(f"{doc.name}: ({target})")
    assert not broken, "the docs link to files that are gone:\n" + "\n".join(broken)
