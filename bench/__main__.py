"""``python -m bench [AREA ...]``: run the benchmarks and write bench/results.md and .json.

Each ``bench/bench_<area>.py`` module has ``run(settings) -> list[Result]`` (the areas are
found by that name: capture, api, consumer, failover, scaleout, archive, django); every
figure it reports is a ratio against a baseline measured in the same run, or, where nothing
compares (a latency, a failover takeover), a value against an absolute goal.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from audit_logging.settings import Settings
from bench._results import HERE, read, write

LOCAL_ENV = HERE.parent / "devstack" / "local.env"


def main(argv: list[str]) -> int:
    areas = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    settings = Settings.load(env_file=Path(LOCAL_ENV))
    # The areas not run now keep their rows from the last run that measured them.
    results = [r for r in read() if r.area not in areas]
    for area in areas:
        module = importlib.import_module(f"bench.bench_{area}")
        print(f"bench: {area} ...", flush=True)
        results.extend(module.run(settings))
        write(results)
    write(results)
    print((HERE / "results.md").read_text(encoding="utf-8"))
    return 0 if all(r.met is not False for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
