"""``--verify-every``: on a schedule, the consumer checks that the search index and the archive
hold the same records for the last complete UTC day, and logs one line about it.

Each run is ``python -m audit_logging.archive verify --json`` for that one day, in a child
process at a lower CPU priority: the check reads a whole day of log_ids from S3 and OpenSearch,
and in a process of its own it never holds this process's interpreter lock, never shares its
memory, and is killed at once at shutdown (a thread could only be abandoned, mid-request, at
exit). The child gets the settings the check needs from this process's settings, as
environment variables, and nothing else of ours (no broker password, no API tokens).

Runs happen at fixed wall-clock times, the same in every process (multiples of the interval
since 1970-01-01T00:00Z, shifted by the settling delay), and only in the process that is the
active consumer of the stream (on a super stream, of its first partition): a group of
consumers checks each day once, and a restart neither adds a run nor moves the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from audit_logging._setting_values import duration_seconds
from audit_logging.errors import ConfigurationError, describe_error, shown
from audit_logging.settings import Secret, Settings

_log = logging.getLogger("audit_logging.consumer.verify")

MINIMUM_EVERY: Final = 60.0  # a shorter interval would only re-read the same day
MAXIMUM_EVERY: Final = 7 * 86_400.0
# A day is checked once its last records can no longer be in flight: a batch closes at most
# AUDIT_LOG_FLUSH_INTERVAL after its first record, and this margin covers its upload and the
# indexing of its last records.
SETTLE_MARGIN: Final = 300.0
# What the child process is given of our settings: what verify reads, nothing else.
_VERIFY_FIELDS: Final = (
    "opensearch_host", "opensearch_port", "opensearch_username", "opensearch_password",
    "opensearch_use_ssl", "opensearch_verify_certs", "opensearch_index_prefix",
    "s3_bucket", "s3_prefix", "aws_access_key_id", "aws_secret_access_key",
    "aws_region_name", "aws_endpoint_url_s3", "retention_months",
)
_KINDS: Final = (
    ("missing_in_index", "missing in index"),
    ("missing_in_archive", "missing in archive"),
    ("duplicates", "duplicates"),
    ("offset_problems", "offset problems"),
)
_SAMPLES: Final = 3  # log_ids named in the line for each kind of difference
_STDERR_KEPT: Final = 64 * 1024


def parse_every(text: str, *, minimum: float = MINIMUM_EVERY, option: str = "--verify-every"
                ) -> float:
    """``3600``, ``3600s``, ``30m``, ``1h``, ``24h``, ``1d`` or ``1.5h``: seconds, from
    ``minimum`` to 7 days."""
    seconds = duration_seconds(text)
    if not minimum <= seconds <= MAXIMUM_EVERY:
        raise ConfigurationError(
            option,
            f"must be a duration from {minimum:g} seconds to 7 days, as seconds (3600) or with "
            f"a unit (30m, 1h, 24h, 1d), got '{shown(text)}'",
        )
    return seconds


def settle_delay(flush_interval: float) -> float:
    return flush_interval + SETTLE_MARGIN


def checked_day(at: dt.datetime, settle: float) -> dt.date:
    """The last UTC day that ended at least ``settle`` seconds before ``at``."""
    return (at.astimezone(dt.UTC) - dt.timedelta(seconds=settle)).date() - dt.timedelta(days=1)


def next_run(now: float, every: float, settle: float) -> float:
    """The first scheduled time (seconds since the epoch) after ``now``: a multiple of
    ``every`` since the epoch, plus ``settle`` (with 24h and a 60 s flush interval, 00:06 UTC
    every day; with 1h, six minutes past each hour)."""
    offset = settle % every
    return offset + (math.floor((now - offset) / every) + 1) * every


def verify_environ(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without any setting of ours, plus the ones verify reads, from ``settings``."""
    ours = {settings.env_name(f.name) for f in dataclasses.fields(Settings)}
    env = {key: value for key, value in base.items() if key not in ours}
    for field in _VERIFY_FIELDS:
        value: Any = getattr(settings, field)
        if value is None:
            # Set and empty means "not set", and keeps a .env file from setting it instead.
            value = ""
        elif isinstance(value, Secret):
            value = value.get()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[settings.env_name(field)] = str(value)
    return env


def summary(day: dt.date, answer: Mapping[str, Any], seconds: float) -> tuple[int, str]:
    """The log level and the one line of a run, from verify's JSON document."""
    checked = answer["days"][0]
    agree = bool(answer["agree"])
    if checked["index_checked"]:
        indexed = f"{checked['indexed']:,} in the index"
    else:
        indexed = "the index not checked (its month is past AUDIT_LOG_RETENTION_MONTHS)"
    counts = []
    for name, label in _KINDS:
        found = checked[name]
        text = f"{label} {found['count']:,}"
        if found["count"] and name != "offset_problems":
            text += f" ({', '.join(str(s) for s in found['sample'][:_SAMPLES])}"
            text += ", ...)" if found["count"] > _SAMPLES else ")"
        counts.append(text)
    # Archive files verify could not read: counted, not named (a key can be long; the
    # command names each). An answer without the key (a verify before it existed) has none.
    unreadable = checked.get("unreadable_files")
    if unreadable is not None:
        counts.append(f"unreadable files {int(unreadable['count']):,}")
    line = (f"verify {day}: the index and the archive {'agree' if agree else 'differ'}: "
            f"{checked['archived']:,} records in the archive ({_files(checked['files'])}), "
            f"{indexed}; {', '.join(counts)} ({seconds:.1f} s)")
    if agree:
        return logging.INFO, line
    if unreadable is not None and unreadable["count"]:
        line += ("; an unreadable file is damaged or no archive file: its records are not "
                 "checked, and no repair reads them")
    return logging.WARNING, (
        f"{line}; `python -m audit_logging.archive verify --since {day} --until {day}` lists "
        "them, and with --repair indexes what the index misses")


class DailyVerify:
    """The schedule, and one child process per run."""

    def __init__(
        self,
        settings: Settings,
        every: float,
        active: Callable[[], bool],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``active``: whether this process is the one that checks (see the module's doc)."""
        self._env = verify_environ(settings, os.environ if environ is None else environ)
        self._every = every
        # A run that is still going when the next is due has hung (or the day is too large
        # for the interval): it is stopped and said so, rather than left to pile up.
        self._limit = max(every, MINIMUM_EVERY)
        self._settle = settle_delay(settings.flush_interval)
        self._active = active

    async def run(self) -> None:
        """Run at every scheduled time until cancelled."""
        due = next_run(time.time(), self._every, self._settle)
        _log.info("verify: every %s, the last complete UTC day, while this process is the "
                  "active consumer; next at %s", _duration(self._every), _moment(due))
        while True:
            await asyncio.sleep(max(0.0, due - time.time()))
            if self._active():
                try:
                    await self.verify(checked_day(_utc(due), self._settle))
                except Exception as exc:  # noqa: BLE001 - a check never stops the consumer
                    _log.warning("verify failed: %s", describe_error(exc))
            else:
                _log.debug("verify: this process is a standby; the active consumer checks")
            due = next_run(max(time.time(), due), self._every, self._settle)

    async def verify(self, day: dt.date) -> None:
        """Check ``day`` and log one line; never raises (but is cancelled)."""
        began = time.monotonic()
        try:
            done = await asyncio.wait_for(self._child(day), self._limit)
        except TimeoutError:
            _log.warning("verify %s did not finish within %s and was stopped (a run may take "
                         "as long as --verify-every, at least a minute); the next run checks "
                         "again", day, _duration(self._limit))
            return
        except OSError as exc:
            _log.warning("verify %s could not start: %s", day, exc)
            return
        seconds = time.monotonic() - began
        code, out, err = done
        if code in (0, 1):
            try:
                level, line = summary(day, json.loads(out), seconds)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                _log.warning("verify %s: its answer could not be read (%s)", day,
                             type(exc).__name__)
                return
            _log.log(level, "%s", line)
            return
        reason = _last_line(err) or f"exit status {code}"
        _log.warning("verify %s could not run: %s; the next run checks again", day, reason)

    async def _child(self, day: dt.date) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "audit_logging.archive", "verify",
            "--since", day.isoformat(), "--until", day.isoformat(), "--json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._env,
        )
        _log.debug("verify %s: started (process %d)", day, proc.pid)
        with contextlib.suppress(OSError, AttributeError):
            # Below the consumer, so the check takes the CPU the consumer leaves.
            niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
            os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
        try:
            out, err = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled (shutdown) or out of time
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                _log.debug("verify %s: stopped (process %d)", day, proc.pid)
        assert proc.returncode is not None
        return proc.returncode, out, err[-_STDERR_KEPT:]


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count:,} files"


def _last_line(err: bytes) -> str:
    lines = [line.strip() for line in err.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return " ".join(lines[-1].split())[:500] if lines else ""


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _moment(seconds: float) -> str:
    return _utc(seconds).isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g} s"
