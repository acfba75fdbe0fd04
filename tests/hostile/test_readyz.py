"""Every file in ``readyz/``: an answer a consumer's ``/readyz`` (or whatever listens at a
``--consumer-url``) might give: not JSON, 10 MB, endless, trickled, silent, nested past the
parser, of the wrong shape, disagreeing with its HTTP status, forging lines, not UTF-8.

``python -m audit_logging status --json --consumer-url URL`` runs against the real stack and a
stand-in server giving that answer: it exits 1 naming the URL and what was wrong with the
answer (the file's ``EXPECT``), in bounded lines and no traceback, and the rest of the status
is still there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from audit_logging.settings import Settings
from tests.consumer._helpers import create_stream
from tests.status._readyz_server import readyz_server
from tests.status._status import run_status

CORPUS = Path(__file__).parent / "readyz"


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.py"))


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"readyz_{path.stem.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_is_there() -> None:
    assert len(corpus()) >= 12


@pytest.mark.services
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_status_reports_the_answer_and_stays_whole(
    path: Path, settings: Settings, tmp_path: Path
) -> None:
    case = load(path)
    create_stream(settings)
    with readyz_server(case.ANSWER) as server:
        run = run_status(settings, "--json", "--consumer-url", server.url, cwd=tmp_path)
        screen = run_status(settings, "--consumer-url", server.url, cwd=tmp_path)
    assert run.returncode == 1, run
    assert "Traceback" not in run.stderr + screen.stderr
    figures = run.figures
    (answer,) = figures["consumer_urls"]
    (problem,) = figures["problems"]
    assert problem.startswith(f"consumer at {server.url}"), problem
    if case.EXPECT is None:
        assert answer["error"] is None and answer["ready"] is False
        assert "is not ready: " in problem
    else:
        assert case.EXPECT in answer["error"], answer
    assert len(problem) <= 2000
    # The rest of the status is there.
    assert figures["broker"]["reachable"] and figures["archive"]["reachable"]
    assert figures["index"]["reachable"]
    # The human screen: bounded lines, none of them forged by the answer.
    assert screen.returncode == 1
    lines = screen.stdout.splitlines()
    assert all(len(line) <= 4000 for line in lines), max(map(len, lines))
    assert lines[-1].startswith("UNHEALTHY: consumer at ")
    assert "healthy" not in lines[:-1] and not any(
        line.startswith("UNHEALTHY") for line in lines[:-1])
    assert "\x1b" not in screen.stdout and "\r" not in screen.stdout
