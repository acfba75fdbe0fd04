"""``python -m audit_logging status [--json] [--only PART[,PART...]]... [--consumer-name
NAME]... [--consumer-url URL]... [--stale-after SECONDS]``.

Exit 0 when healthy, 1 when something is not (each reason named), 2 for bad usage or a bad
setting. Every part is asked at once and each within its own deadline, so status answers in
about 15 s even when a service hangs. ``--only`` reads and judges some parts and needs the
settings of those alone: an app host, which has neither the archive's bucket nor OpenSearch,
asks ``--only spool``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from audit_logging.errors import ConfigurationError, MissingExtraError, describe_error, shown
from audit_logging.partitions import partition_names
from audit_logging.settings import Settings
from audit_logging.status.broker import read_broker
from audit_logging.status.bucket import read_archive
from audit_logging.status.figures import (
    PARTS,
    Archive,
    Broker,
    Index,
    Readiness,
    Spool,
    Status,
    as_json,
    default_stale_after,
    problems,
)
from audit_logging.status.index import read_index
from audit_logging.status.readiness import ConsumerUrlError, check_url, read_readiness
from audit_logging.status.screen import render
from audit_logging.status.spool import read_spool
from audit_logging.stream_offsets import DEFAULT_CONSUMER_NAME, check_consumer_name

EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1
EXIT_USAGE: Final = 2
PROG: Final = "python -m audit_logging status"
BROKER_TIMEOUT: Final = 10.0
S3_TIMEOUT: Final = 10.0
OPENSEARCH_TIMEOUT: Final = 8.0
READYZ_TIMEOUT: Final = 5.0
# Whatever a part is doing (a client stuck past its own timeouts), status answers by then.
DEADLINE: Final = 13.0
MAX_CONSUMER_URLS: Final = 64


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="One screen for an operator: the stream(s) and each consumer name's "
        "stored offset, lag and oldest unprocessed record, each consumer's readiness, the "
        "newest archive object and digest, dead letters of the last day, index document "
        "counts per month and this host's spool. Exit 0 healthy, 1 unhealthy, 2 bad usage.",
    )
    top.add_argument("--json", action="store_true", help="print one JSON object instead")
    top.add_argument(
        "--only", action="append", metavar="PART[,PART...]",
        help=f"read and judge only these parts ({', '.join(PARTS)}; repeatable or "
        "comma-separated; default all). The others are neither read nor need their settings: "
        "--only spool on an app host. --consumer-url is read whenever given")
    top.add_argument(
        "--consumer-name", action="append", dest="names", metavar="NAME",
        help=f"a consumer group to report (repeatable; default {DEFAULT_CONSUMER_NAME})")
    top.add_argument(
        "--consumer-url", action="append", dest="urls", metavar="URL", default=[],
        help="a consumer's --metrics-port address, such as http://consumer-1:9108; its "
        "/readyz is asked (repeatable). Unreachable or not ready is unhealthy")
    top.add_argument(
        "--stale-after", type=float, metavar="SECONDS",
        help="a consumer name is stale when its oldest unprocessed record has waited longer "
        "(default 2 x AUDIT_LOG_FLUSH_INTERVAL + 30)")
    return top


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Status's command line; the settings come from ``environ`` (default ``os.environ``)
    and a ``.env`` file (``manage.py audit_logs_status`` passes ``settings.AUDIT_LOGGING``
    filled in)."""
    # The clients' own log lines (with tracebacks) would bury the screen: each failure is
    # reported in it, in one line.
    for name in ("opensearch", "rstream", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    args = parser().parse_args(argv)
    try:
        parts = parse_parts(args.only)
        settings = Settings.load(environ=environ)
        if "archive" in parts:
            settings.require("s3_bucket")
        names = [check_consumer_name(name) for name in args.names or [DEFAULT_CONSUMER_NAME]]
        urls = [check_url(url) for url in args.urls]
        if len(urls) > MAX_CONSUMER_URLS:
            raise ConsumerUrlError(f"--consumer-url is given {len(urls)} times (at most "
                                   f"{MAX_CONSUMER_URLS})")
        stale_after = args.stale_after
        if stale_after is None:
            stale_after = default_stale_after(settings.flush_interval)
        elif not 0 < stale_after <= 10 * 86_400:
            raise ConfigurationError("--stale-after", f"must be 0 to 864000 seconds, got "
                                     f"{stale_after:g}")
        status = gather(settings, names, urls, stale_after, only=parts)
    except (ConfigurationError, ConsumerUrlError, MissingExtraError) as exc:
        print(f"status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(as_json(status), indent=2, ensure_ascii=False))
    else:
        print(render(status))
    return EXIT_HEALTHY if status.healthy else EXIT_UNHEALTHY


def parse_parts(values: Sequence[str] | None) -> tuple[str, ...]:
    """The parts ``--only`` asks for, in the order status shows them (all when not given)."""
    if not values:
        return PARTS
    asked = set()
    for value in values:
        for name in value.split(","):
            if name.strip() not in PARTS:
                raise ConfigurationError(
                    "--only", f"'{shown(name)}' is not a part of status (parts: "
                    f"{', '.join(PARTS)}, comma-separated)")
            asked.add(name.strip())
    return tuple(part for part in PARTS if part in asked)


def configured_streams(settings: Settings) -> list[str]:
    name, count = settings.rabbitmq_stream_name, settings.stream_partitions
    return partition_names(name, count) if count > 1 else [name]


def gather(settings: Settings, names: Sequence[str], urls: Sequence[str],
           stale_after: float, *, only: Sequence[str] = PARTS,
           deadline: float = DEADLINE) -> Status:
    """The parts in ``only`` and every URL at once, each in a thread of its own; a part not
    done by ``deadline`` seconds is reported as not answering. A part not in ``only`` is
    neither read nor needs its settings, and is None in the result."""
    parts: dict[str, _Part] = {}
    if "broker" in only:
        parts["broker"] = _Part(
            lambda: asyncio.run(read_broker(settings, names, BROKER_TIMEOUT)),
            lambda error: Broker(error=error))
    if "archive" in only:
        streams = configured_streams(settings)
        bucket = settings.require("s3_bucket")
        parts["archive"] = _Part(
            lambda: read_archive(settings, streams, S3_TIMEOUT),
            lambda error: Archive(bucket, settings.s3_prefix, error=error))
    if "index" in only:
        parts["index"] = _Part(
            lambda: read_index(settings, OPENSEARCH_TIMEOUT),
            lambda error: Index(settings.opensearch_index_prefix, error=error))
    if "spool" in only:
        parts["spool"] = _Part(
            lambda: read_spool(settings.spool_dir),
            lambda error: Spool(str(settings.spool_dir), exists=True, error=error))
    for index, url in enumerate(urls):
        parts[f"url{index}"] = _Part(functools.partial(read_readiness, url, READYZ_TIMEOUT),
                                     functools.partial(_unanswered, url))
    ends = time.monotonic() + deadline
    for part in parts.values():
        part.start()
    for part in parts.values():
        part.join(max(0.0, ends - time.monotonic()))
    results = {name: part.result(deadline) for name, part in parts.items()}
    status = Status(
        checked_at=time.time(),
        stale_after=stale_after,
        broker=results.pop("broker", None),
        archive=results.pop("archive", None),
        index=results.pop("index", None),
        spool=results.pop("spool", None),
        readiness=list(results.values()),
    )
    status.problems = problems(status)
    return status


def _unanswered(url: str, error: str) -> Readiness:
    return Readiness(url, error=error)


class _Part:
    """One part of status, read in a daemon thread (one stuck past every timeout of its
    client is left behind, and never holds up the answer or the exit)."""

    def __init__(self, read: Callable[[], Any], failed: Callable[[str], Any]) -> None:
        self._read = read
        self._failed = failed
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._value = self._read()
        except BaseException as exc:  # noqa: BLE001 - reported in result()
            self._error = exc

    def result(self, deadline: float) -> Any:
        if self._thread.is_alive():
            return self._failed(f"no answer within {deadline:g} s")
        if isinstance(self._error, MissingExtraError):
            raise self._error
        if self._error is not None:
            return self._failed(describe_error(self._error))
        return self._value
