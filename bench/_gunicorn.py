"""gunicorn serving the benchmark's Django project (``bench/django_site``) with sync
workers, in a process group of its own, and the CPU time its processes have used."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import psutil

from bench._http_load import HOST, drive
from bench._results import HERE

START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``gunicorn bench.django_site.wsgi`` with ``workers`` sync workers, its environment
    ``env`` (the variant, the database, the library's settings), its log in ``log_path``."""

    def __init__(self, env: Mapping[str, str], workers: int, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.django_site.wsgi:application",
            f"--workers={workers}",
            "--worker-class=sync",
            f"--bind={HOST}:{self.port}",
            "--backlog=256",
            # A worker starved of CPU by a loaded machine is not a hung one: the default
            # (30 s) would restart it mid-round.
            "--timeout=300",
            "--log-level=warning",
            "--error-logfile=-",
        ]
        pythonpath = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
        with log_path.open("ab") as log:  # gunicorn's log and whatever else the app prints
            self.proc = subprocess.Popen(
                command,
                env={**env, "PYTHONPATH": pythonpath},
                cwd=log_path.parent,  # no .env of the repository's is read
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(workers)

    def _wait_ready(self, workers: int) -> None:
        """Until ``workers`` workers run and the server answers (the warm-up that follows
        loads the rest: the first requests of each worker are not measured)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bench django: gunicorn did not start:\n{self.log()}")
            running = len(psutil.Process(self.proc.pid).children())
            if running == workers and not drive(self.port, ["/ping"], 1, method="GET").failed:
                return
            time.sleep(0.2)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except FileNotFoundError:
            return "(no log)"

    def processes(self) -> list[psutil.Process]:
        """The master and its workers."""
        master = psutil.Process(self.proc.pid)
        return [master, *master.children(recursive=True)]

    def stop(self) -> int:
        """SIGTERM, as a deployment stops it: the sync workers finish and run their exit
        hooks (the library drains there)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this server was started in
            return self.proc.wait()
