"""Every file in ``command_flags/``: a value an operator's script or a pasted line might give
a command's flag (``python -m audit_logging.consumer`` or ``python -m audit_logging status``):
digits of other scripts, line breaks, 10,000 characters, NaN, a URL for a host.

The command exits 2 with one line, of at most 300 characters, naming the flag, and no
traceback; nothing is started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit_logging.settings import Settings

CORPUS = Path(__file__).parent / "command_flags"
MODULES = {"consumer": ["audit_logging.consumer"], "status": ["audit_logging", "status"]}


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


def argument(value: str | dict[str, Any]) -> str:
    if isinstance(value, str):
        return value
    return str(value["repeat"]) * int(value["times"])


def test_the_corpus_is_there() -> None:
    assert {json.loads(p.read_text(encoding="utf-8"))["command"] for p in corpus()} == set(
        MODULES
    )


@pytest.mark.services
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_the_command_refuses_the_value_in_one_line_naming_the_flag(
    path: Path, settings: Settings, stack_env: dict[str, str], tmp_path: Path
) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    env = os.environ | stack_env | {"RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name}
    run = subprocess.run(
        [sys.executable, "-m", *MODULES[case["command"]], *map(argument, case["args"])],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 2, (run.returncode, run.stdout[-500:], run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or all(line.startswith("usage:") or line.startswith(" ")
                                   for line in lines[:-1]), lines
    assert case["flag"] in lines[-1]
    assert len(lines[-1]) <= 300, len(lines[-1])
    assert not any(line.startswith(("ERROR forged", "healthy")) for line in lines)
