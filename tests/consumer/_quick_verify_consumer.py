"""``python -m tests.consumer._quick_verify_consumer [consumer arguments]``: the consumer, with
``--verify-every`` allowed down to one second (the command's own minimum is a minute), so a
test sees several scheduled checks in seconds."""

from __future__ import annotations

import sys

from audit_logging.consumer.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], verify_minimum=1.0))
