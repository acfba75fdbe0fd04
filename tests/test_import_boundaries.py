"""The capture side installs and imports without the consumer's and the API's dependencies.

A producer-only install (``pip install audit-logging-pipeline``) has rstream and
python-json-logger, nothing else: importing any capture module must not reach opensearch-py,
boto3, pyarrow or Starlette, and the consumer and the API must not import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CAPTURE = (
    "audit_logging",
    "audit_logging.handlers",
    "audit_logging.middleware",
    "audit_logging.middleware.asgi",
    "audit_logging.middleware.wsgi",
    "audit_logging.publisher",
    "audit_logging.capture",
    "audit_logging.context",
    "audit_logging.testing",
    "audit_logging.record",
    "audit_logging.settings",
    "audit_logging.errors",
)
SERVER_ONLY = ("opensearchpy", "boto3", "botocore", "pyarrow", "starlette", "uvicorn")


def _imported_after(module: str, blocked: tuple[str, ...]) -> list[str]:
    """Import ``module`` in a fresh interpreter where ``blocked`` cannot be imported; return
    the audit_logging modules it loaded (the import fails if it needed a blocked one)."""
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys
        BLOCKED = {blocked!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED or name in BLOCKED:
                    raise ImportError(f"blocked for this test: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        importlib.import_module({module!r})
        print("\\n".join(sorted(m for m in sys.modules if m.startswith("audit_logging"))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"importing {module} needs a server-side package:\n{done.stderr}"
    return done.stdout.split()


@pytest.mark.parametrize("module", CAPTURE)
def test_capture_imports_without_the_server_side_packages(module: str) -> None:
    loaded = _imported_after(module, SERVER_ONLY)
    server_side = [
        m
        for m in loaded
        if m.startswith(("audit_logging.consumer", "audit_logging.api"))
        or m == "audit_logging.search_index"
    ]
    assert not server_side, f"{module} pulls in {server_side}"


@pytest.mark.parametrize("module", CAPTURE)
def test_capture_imports_without_prometheus_client(module: str) -> None:
    """Capture keeps its counts in plain Python: the metrics extra only exports them."""
    loaded = _imported_after(module, ("prometheus_client",))
    if module == "audit_logging.publisher":
        assert "audit_logging._capture_stats" in loaded  # the counts are there without it
    assert not [m for m in loaded if m.startswith("audit_logging.metrics")], module


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("audit_logging.metrics.capture", "prometheus_client", "metrics"),
        ("audit_logging.contrib.django", "django", "django"),
        ("audit_logging.contrib.flask", "flask", "flask"),
    ],
)
def test_a_feature_without_its_extra_names_it(module: str, package: str, extra: str) -> None:
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == {package!r}:
                    raise ImportError(f"blocked for this test: {{name}}")
                return None
        sys.meta_path.insert(0, Block())
        from audit_logging.errors import MissingExtraError
        try:
            import {module}
        except MissingExtraError as exc:
            print(exc)
        else:
            raise SystemExit("imported without {package}")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"pip install 'audit-logging-pipeline[{extra}]'" in done.stdout, done.stdout


def test_the_consumer_and_the_api_never_import_each_other() -> None:
    consumer = _imported_after("audit_logging.consumer.__main__", ("starlette", "uvicorn"))
    assert not [m for m in consumer if m.startswith("audit_logging.api")]
    api = _imported_after("audit_logging.api.app", ("pyarrow", "boto3", "botocore"))
    assert not [m for m in api if m.startswith("audit_logging.consumer")]


# What the record filter (shared by the API's search and the archive's export) may not reach:
# it sits below both, and below nothing of the capture side.
ABOVE_THE_RECORD_FILTER = (
    "audit_logging.api",
    "audit_logging.archive",
    "audit_logging.consumer",
    "audit_logging.contrib",
    "audit_logging.handlers",
    "audit_logging.middleware",
    "audit_logging.capture",
    "audit_logging.context",
    "audit_logging.publisher",
    "audit_logging.testing",
)


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_of(module: str) -> set[str]:
    """The audit_logging modules ``module``'s source imports, wherever (in functions and
    under TYPE_CHECKING too): what it could load, not only what one run loads."""
    source = _module_file(module)
    assert source is not None, module
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from audit_logging import errors" imports a module; "... import X" a name.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(n for n in names if n.startswith("audit_logging.") and _module_file(n))
    return found


def test_the_record_filter_sits_below_the_api_and_the_archive() -> None:
    reached: set[str] = set()
    todo = ["audit_logging.record_filter"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(_imports_of(module))
    assert "audit_logging.session_key" in reached  # the walk follows imports
    above = sorted(m for m in reached if m.startswith(ABOVE_THE_RECORD_FILTER))
    assert not above, f"audit_logging.record_filter reaches {above}"
    _imported_after("audit_logging.record_filter", SERVER_ONLY)


def _reached_from(modules: list[str]) -> set[str]:
    reached: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(_imports_of(module))
    return reached


def test_the_archive_sits_below_the_consumer_and_the_api() -> None:
    """The consumer writes the archive and the API reads it: the archive's code (its layout,
    reader and commands) imports neither, nor the capture side."""
    package = ROOT / "audit_logging" / "archive"
    modules = ["audit_logging.archive"] + [
        f"audit_logging.archive.{path.stem}"
        for path in sorted(package.glob("*.py"))
        if path.stem != "__init__"
    ]
    assert "audit_logging.archive.cli" in modules
    reached = _reached_from(modules)
    assert "audit_logging.indexer" in reached  # the walk follows imports to reindex's writer
    forbidden = (
        "audit_logging.api",
        "audit_logging.consumer",
        "audit_logging.contrib",
        "audit_logging.handlers",
        "audit_logging.middleware",
        "audit_logging.capture",
        "audit_logging.publisher",
        "audit_logging.testing",
    )
    above = sorted(m for m in reached if m.startswith(forbidden))
    assert not above, f"the archive package reaches {above}"
    # What a run loads, each command's module included (the package's __init__ brings the
    # capture side's public functions to every importer: only the static walk judges those).
    from audit_logging.archive.cli import COMMANDS

    above_at_run_time = ("audit_logging.api", "audit_logging.consumer", "audit_logging.contrib")
    for name in COMMANDS:
        loaded = _imported_after(f"audit_logging.archive.{name}_command", ("starlette", "uvicorn"))
        assert not [m for m in loaded if m.startswith(above_at_run_time)], (name, loaded)
