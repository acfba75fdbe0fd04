"""Benchmark results: one row per measure, written to bench/results.md and bench/results.json."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Result:
    """``ours`` against ``baseline``, both measured in the same run; ``ratio`` = ours/baseline.

    ``goal`` says in words which way the ratio (or the value) must go, e.g. "<= 0.8x".
    """

    area: str
    measure: str
    ours: float
    baseline: float | None
    unit: str
    goal: str
    met: bool | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(0, math.ceil(pct / 100 * len(ordered)) - 1)
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value == 0 or 0.01 <= abs(value) < 100_000:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:.3e}"


def write(results: Sequence[Result], out_dir: Path = HERE) -> None:
    rows = [
        "| area | measure | ours | baseline | unit | ratio | goal | met | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        ratio = "-" if r.ratio is None else f"{r.ratio:.3g}x"
        rows.append(
            f"| {r.area} | {r.measure} | {_fmt(r.ours)} | {_fmt(r.baseline)} | {r.unit} | "
            f"{ratio} | {r.goal} | {met} | {r.note} |"
        )
    machine = f"{platform.node()} · {platform.machine()} · Python {platform.python_version()}"
    text = "# Benchmark results\n\nWritten by `make bench` on " + machine + ".\n\n"
    (out_dir / "results.md").write_text(text + "\n".join(rows) + "\n", encoding="utf-8")
    payload = [dataclasses.asdict(r) | {"ratio": r.ratio} for r in results]
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def read(out_dir: Path = HERE) -> list[Result]:
    """The rows of the last results.json (none if there is none)."""
    try:
        payload = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    fields = {f.name for f in dataclasses.fields(Result)}
    return [Result(**{k: v for k, v in row.items() if k in fields}) for row in payload]
