"""``python -m audit_logging.archive COMMAND``: see :mod:`audit_logging.archive.cli`."""

from __future__ import annotations

from audit_logging.archive.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
