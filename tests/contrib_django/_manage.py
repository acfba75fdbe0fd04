"""The test project's ``manage.py`` in a process of its own, as a deployment runs it: the
library's settings come from a settings module written for the test (its ``AUDIT_LOGGING``
given literally) and from an environment pointing at the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.consumer._helpers import ConsumerProcess

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "tests" / "django_project" / "manage.py"
SETTINGS_MODULE = "djcmd_settings"
# What the library reads from an environment: none of it comes from the developer's shell.
LIBRARY_PREFIXES = ("RABBITMQ_", "OPENSEARCH_", "AUDIT_LOG_", "AWS_")


def write_settings(folder: Path, audit_logging: Mapping[str, object]) -> Path:
    """A settings module ``djcmd_settings`` in ``folder``: the test project's settings with
    this ``AUDIT_LOGGING``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SETTINGS_MODULE}.py").write_text(
        "from tests.django_project.settings import *  # noqa: F403\n\n"
        f"AUDIT_LOGGING = {dict(audit_logging)!r}\n",
        encoding="utf-8",
    )
    return folder


def manage_env(
    stack_env: Mapping[str, str],
    settings_folder: Path | None,
    *,
    without: Sequence[str] = (),
    **extra: str,
) -> dict[str, str]:
    """The local stack's environment less ``without`` (those come from AUDIT_LOGGING), then
    ``extra``; with ``settings_folder``, its settings module is the project's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(LIBRARY_PREFIXES)
        and key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
    }
    env.update({key: value for key, value in stack_env.items() if key not in without})
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    if settings_folder is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(settings_folder), str(REPO)])
        env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env.update(extra)
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    def __str__(self) -> str:
        return f"exit {self.returncode}\n{self.stdout[-4000:]}\n{self.stderr[-4000:]}"


def run_manage(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> Run:
    """``python tests/django_project/manage.py *args`` to its end (the timeout only guards
    the suite against a hang); run from ``cwd`` so no stray ``.env`` is read."""
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


class ManageProcess(ConsumerProcess):
    """``python tests/django_project/manage.py *args`` left running (a consumer), its output
    in a file; signals and exit status as :class:`ConsumerProcess`."""

    def start(self) -> ManageProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(MANAGE), *self.args],
                env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            )
        return self
