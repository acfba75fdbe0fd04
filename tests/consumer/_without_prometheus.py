"""``python -m tests.consumer._without_prometheus [consumer arguments]``: the consumer in an
interpreter where prometheus-client cannot be imported, as in an install without the
``metrics`` extra."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.split(".", maxsplit=1)[0] == "prometheus_client":
            raise ImportError(f"blocked for this test: {name}")
        return None


sys.meta_path.insert(0, _Blocked())
sys.modules.pop("prometheus_client", None)

from audit_logging.consumer.__main__ import main  # noqa: E402 - after the block

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
