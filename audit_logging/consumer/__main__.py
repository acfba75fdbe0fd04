"""``python -m audit_logging.consumer``: index into OpenSearch and archive to S3, once each.

Exit status: 0 after a clean stop (SIGTERM/SIGINT: everything read was flushed and the
offset stored), 1 when it had to stop without flushing (a second signal, the shutdown
timeout, an unexpected error), 2 for a bad flag or setting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from audit_logging.consumer.daily_verify import MINIMUM_EVERY, parse_every
from audit_logging.consumer.options import (
    DEFAULT_CONSUMER_NAME,
    DEFAULT_METRICS_HOST,
    ConsumerOptions,
    check_consumer_name,
    check_metrics_host,
    parse_metrics_port,
    parse_start,
)
from audit_logging.errors import ConfigurationError, MissingExtraError
from audit_logging.metrics._prometheus import require_prometheus
from audit_logging.settings import Settings

PROG = "python -m audit_logging.consumer"
# Flags that set a Settings field: errors about that setting name the flag too.
_FLAG_SETTINGS = {
    "AUDIT_LOG_BATCH_SIZE": "--batch-size",
    "AUDIT_LOG_FLUSH_INTERVAL": "--flush-interval",
}


def _seconds(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo:g} to {hi:g} seconds, got {text!r}")
        return value

    return parse


def _add_seconds(
    parser: argparse.ArgumentParser, flag: str, bounds: tuple[float, float, float], text: str
) -> None:
    low, high, default = bounds
    parser.add_argument(
        flag,
        type=_seconds(low, high),
        default=default,
        metavar="SECONDS",
        help=f"{text} (default {default:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Read audit records from the RabbitMQ stream, index them into OpenSearch "
        "and archive them as Parquet in S3, each record exactly once.",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        help="messages per batch (one S3 file per record day, one offset store); "
        "AUDIT_LOG_BATCH_SIZE, default 1000",
    )
    parser.add_argument(
        "--flush-interval",
        metavar="SECONDS",
        help="a batch is archived at the latest this long after its first message; "
        "AUDIT_LOG_FLUSH_INTERVAL, default 60",
    )
    parser.add_argument(
        "--consumer-name",
        default=DEFAULT_CONSUMER_NAME,
        metavar="NAME",
        help="the consumer group: the name the stream offset is stored under; processes with "
        "the same name are one group (one active, the others standbys), and the first group "
        f"on a stream claims its AUDIT_LOG_S3_PREFIX (default {DEFAULT_CONSUMER_NAME})",
    )
    parser.add_argument(
        "--from",
        dest="start",
        default="first",
        metavar="WHERE",
        help="where a name without a stored offset starts: first, last, next, an offset or an "
        "ISO 8601 time with a zone (default first)",
    )
    _add_seconds(
        parser,
        "--index-delay",
        (0.0, 60.0, 0.1),
        "longest a record waits before it is sent to OpenSearch, to share a bulk "
        "request with the records that follow it",
    )
    _add_seconds(
        parser,
        "--shutdown-timeout",
        (0.0, 3600.0, 30.0),
        "after SIGTERM, how long the last flush may wait for OpenSearch and S3",
    )
    parser.add_argument(
        "--verify-every",
        metavar="DURATION",
        help="check that the index and the archive agree on the last complete UTC day this "
        "often (3600, 30m, 1h, 24h; at least 60 s) and log one line about it (default: never)",
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="serve /metrics (Prometheus), /healthz and /readyz on this TCP port; needs the "
        "metrics extra (default: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default=DEFAULT_METRICS_HOST,
        metavar="HOST",
        help="the address --metrics-port listens on; 0.0.0.0 for every interface "
        f"(default {DEFAULT_METRICS_HOST})",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    return parser


def _load(
    args: argparse.Namespace, environ: Mapping[str, str], verify_minimum: float = MINIMUM_EVERY
) -> tuple[Settings, ConsumerOptions]:
    overrides = {}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.flush_interval is not None:
        overrides["flush_interval"] = args.flush_interval
    try:
        settings = Settings.load(environ=environ, **overrides)
    except ConfigurationError as exc:
        flag = _FLAG_SETTINGS.get(exc.setting)
        if flag and getattr(args, flag[2:].replace("-", "_")) is not None:
            raise ConfigurationError(
                f"{flag} ({exc.setting})", str(exc).split(": ", 1)[1]
            ) from None
        raise
    settings.require("s3_bucket")
    options = ConsumerOptions(
        consumer_name=check_consumer_name(args.consumer_name),
        start=parse_start(args.start),
        index_delay=args.index_delay,
        shutdown_timeout=args.shutdown_timeout,
        verify_every=(
            None
            if args.verify_every is None
            else parse_every(args.verify_every, minimum=verify_minimum)
        ),
        metrics_port=None if args.metrics_port is None else parse_metrics_port(args.metrics_port),
        metrics_host=check_metrics_host(args.metrics_host),
    )
    return settings, options


def _require_extras(args: argparse.Namespace) -> None:
    if args.metrics_port is not None:
        require_prometheus()
    for module, package in (
        ("opensearchpy", "opensearch-py"),
        ("boto3", "boto3"),
        ("pyarrow", "pyarrow"),
    ):
        try:
            __import__(module)
        except ImportError:
            raise MissingExtraError("consumer", package) from None


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    on_uploaded: Callable[[str], None] | None = None,
    verify_minimum: float = MINIMUM_EVERY,
    prog: str = PROG,
) -> int:
    """The consumer's command line; ``on_uploaded`` is called with each archive key right
    after its upload (the crash tests end the process there); ``verify_minimum``: the
    shortest ``--verify-every`` (tests check in seconds, not minutes); ``prog``: the command
    its error messages name (``manage.py consume_audit_logs`` runs this too)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per batch is the consumer's voice; its clients' per-request lines would drown it.
    # opensearch-py logs every failed request at WARNING: during an outage the consumer's own
    # report every 10 s says it once.
    levels = {"opensearch": logging.ERROR, "urllib3": logging.ERROR}
    for noisy in ("opensearch", "urllib3", "botocore", "boto3", "rstream"):
        level = max(levels.get(noisy, logging.WARNING), logging.getLogger().level)
        logging.getLogger(noisy).setLevel(level)
    try:
        _require_extras(args)
        settings, options = _load(args, os.environ if environ is None else environ, verify_minimum)
    except (ConfigurationError, MissingExtraError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2

    from audit_logging.consumer.supervisor import Supervisor

    return asyncio.run(Supervisor(settings, options, on_uploaded=on_uploaded).run())


if __name__ == "__main__":
    raise SystemExit(main())
