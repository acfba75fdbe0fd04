"""Status sits beside the consumer and the API: it reads what they write and imports neither
(nor anything above the archive package), so it runs where only they are installed."""

from __future__ import annotations

from tests.test_import_boundaries import ROOT, _imported_after, _reached_from


def test_status_imports_neither_the_consumer_nor_the_api() -> None:
    package = ROOT / "audit_logging" / "status"
    modules = ["audit_logging.__main__"] + [
        f"audit_logging.status.{path.stem}" for path in sorted(package.glob("*.py"))
    ]
    reached = _reached_from(modules)
    assert "audit_logging.status.command" in reached
    assert "audit_logging.stream_end" in reached  # the walk follows imports
    above = sorted(m for m in reached
                   if m.startswith(("audit_logging.consumer", "audit_logging.api",
                                    "audit_logging.contrib")))
    assert not above, f"status reaches {above}"
    loaded = _imported_after("audit_logging.status.command", ("starlette", "uvicorn"))
    assert not [m for m in loaded if m.startswith(("audit_logging.consumer", "audit_logging.api"))]
