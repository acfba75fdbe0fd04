"""Whether OpenSearch and S3 answer, asked every few seconds from threads of their own.

The sinks' own calls say nothing while the consumer is idle, and a call that hangs says
nothing for a minute; a light request each ``PROBE_EVERY`` seconds, bounded by
``PROBE_TIMEOUT``, notices a cut dependency within about ``PROBE_EVERY + 2 * PROBE_TIMEOUT``
seconds either way. "Up" means the service answers and would take the consumer's writes: a
connection error, a timeout, a 5xx, a refusal of the credentials (401, 403) or a missing
bucket (404) is down; another answer below 500 is up. Each probe runs in its own thread, so
a hung S3 never delays the news about OpenSearch, and neither ever touches the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from audit_logging.consumer.s3 import make_s3_client
from audit_logging.search_index import make_client

if TYPE_CHECKING:
    from audit_logging.settings import Settings

PROBE_EVERY: Final = 2.0
PROBE_TIMEOUT: Final = 2.0
_log = logging.getLogger("audit_logging.consumer")


class DependencyDown(Exception):  # noqa: N818 - an answer, not a failure of ours
    """The dependency does not answer; the message says how (short, no secrets)."""


class Probe:
    """One dependency's latest answer, refreshed by a daemon thread."""

    def __init__(self, name: str, check: Callable[[], None], every: float = PROBE_EVERY) -> None:
        self.name = name
        self._check = check
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{name}", daemon=True)
        # Down until the first answer: readiness is earned, not assumed.
        self.up = False
        self.problem: str | None = "not checked yet"
        self._checked_at: float | None = None

    def start(self) -> Probe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def state(self) -> tuple[bool, str | None]:
        """(up, problem); a probe whose last answer is stale (its thread stuck past its
        bound) counts as down."""
        checked_at = self._checked_at
        limit = 3 * (self._every + 2 * PROBE_TIMEOUT)
        if checked_at is not None and time.monotonic() - checked_at > limit:
            return False, f"no answer for {time.monotonic() - checked_at:.0f} s"
        return self.up, self.problem

    def check_now(self) -> None:
        try:
            self._check()
        except DependencyDown as exc:
            self._record(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever it is, the dependency is not usable
            self._record(False, type(exc).__name__)
        else:
            self._record(True, None)

    def _record(self, up: bool, problem: str | None) -> None:
        if up != self.up and self._checked_at is not None:
            _log.info("%s %s", self.name, "answers again" if up else f"does not answer: {problem}")
        self.up, self.problem = up, problem
        self._checked_at = time.monotonic()

    def _run(self) -> None:
        while True:
            self.check_now()
            if self._stop.wait(self._every):
                return


# The credentials refused: every write the consumer makes would be refused too.
REFUSED: Final = (401, 403)


def opensearch_check(settings: Settings) -> Callable[[], None]:
    from opensearchpy.exceptions import TransportError

    client = make_client(settings, timeout=PROBE_TIMEOUT, max_retries=0)

    def check() -> None:
        try:
            client.info()
        except TransportError as exc:
            status = exc.status_code
            if isinstance(status, int) and status < 500 and status not in REFUSED:
                return  # it answers, if not to this question
            raise DependencyDown(
                f"{type(exc).__name__}" + (f" (HTTP {status})" if isinstance(status, int) else "")
            ) from None

    return check


def s3_check(settings: Settings) -> Callable[[], None]:
    from botocore.exceptions import BotoCoreError, ClientError

    client = make_s3_client(settings, connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT)
    bucket = settings.require("s3_bucket")

    def check() -> None:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if 0 < int(status) < 500 and int(status) not in (*REFUSED, 404):
                return
            raise DependencyDown(f"HTTP {status}") from None
        except BotoCoreError as exc:
            raise DependencyDown(type(exc).__name__) from None

    return check
