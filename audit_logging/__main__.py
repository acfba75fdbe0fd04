"""``python -m audit_logging status``: see :mod:`audit_logging.status`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python -m audit_logging status [--help]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "status":
        print(USAGE, file=sys.stderr)
        return 2
    from audit_logging.status.command import main as status

    return status(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
