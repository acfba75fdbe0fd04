"""For the shutdown tests: a server stopped while the broker hangs, and the checks that what
it said it kept is in the spool and that the next process sends it all."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from audit_logging.settings import Settings
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env, lines_on_disk

KEPT = re.compile(r"(\d+) audit records were not confirmed by the broker before shutdown")

ADOPT_AND_SEND = """
import json, logging, sys, time
from pathlib import Path
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
settings = Settings.load(env_file=None)
handler = AuditHandler(settings=settings)
logging.getLogger("audit").addHandler(handler)
logging.getLogger("audit").setLevel(logging.INFO)
logging.getLogger("audit").info("m", extra={"action": "CREATE", "object_id": "next"})
deadline = time.monotonic() + 60
while len(list(Path(settings.spool_dir).iterdir())) > 1 and time.monotonic() < deadline:
    time.sleep(0.2)
left = handler.close(timeout=30)
print(json.dumps(handler.stats() | {"left": left}), flush=True)
"""


def assert_the_next_process_sends_all(settings: Settings) -> None:
    """A new process pointed at the real broker with the same spool folder sends the 100
    records spooled (object_ids 0 to 99) and one of its own."""
    done = subprocess.run([sys.executable, "-c", ADOPT_AND_SEND], env=app_env(settings),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"left": 0' in done.stdout, done.stdout + done.stderr
    records = stream_records(settings, settings.rabbitmq_stream_name, 101)
    assert sorted(r["object_id"] for r in records) == sorted([*map(str, range(100)), "next"])


@contextlib.contextmanager
def server_group(
    command: Sequence[str], env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[str]]:
    """A server and its workers in a process group of their own, ended if the test leaves
    them running (a failed test ends the workers too)."""
    server = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield server
    finally:
        if server.poll() is None:
            # The workers hold the pipes open too; only the group's end lets communicate return.
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()


def stop(server: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM once the workers' publishers are stuck; the server's stdout and stderr."""
    time.sleep(1)  # the workers' publishers are stuck connecting to the hung broker
    server.send_signal(signal.SIGTERM)
    return server.communicate(timeout=120)


def assert_the_workers_spooled_what_they_reported(
    settings: Settings, server: subprocess.Popen[str], stderr: str
) -> None:
    """The server exited cleanly, its workers said they kept 100 records in all, the spool
    holds those 100, and the next process sends them."""
    assert server.returncode == 0, stderr
    reported = sum(int(n) for n in KEPT.findall(stderr))
    assert reported == 100, stderr
    assert lines_on_disk(Path(settings.spool_dir)) == 100
    assert "Task exception was never retrieved" not in stderr, stderr
    assert "could not be kept" not in stderr, stderr
    assert_the_next_process_sends_all(settings)
