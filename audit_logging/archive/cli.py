"""The archive's commands: ``python -m audit_logging.archive {export,reindex,verify}``.

Exit codes, for cron jobs and scripts:

* 0: done, and (verify) the tiers agree (``verify --integrity``: no problem found);
* 1: done, and verify found records missing, extra or twice (with ``--repair``: some are
  left that it could not repair), or reindex could not index some records (the index
  refused them; the report names them), or verify, reindex or export passed over archive
  files it could not read (damaged, or not archive files; each is named, the rest checked,
  indexed or exported), or ``verify --integrity`` found problems (each listed with its kind
  and object key);
* 2: bad usage or a bad setting (the message names it); nothing was done;
* 3: a service failed (S3, OpenSearch, RabbitMQ) or the command was interrupted; what was done is
  kept (a reindex resumes, an export leaves no file behind).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Final, Protocol

from audit_logging._setting_values import INDEX_PREFIX_RE
from audit_logging.errors import (
    AuditLoggingError,
    ConfigurationError,
    FilterError,
    describe_error,
    shown,
)
from audit_logging.record_filter import (
    END_TIME,
    FILTER_PARAMS,
    SESSION,
    START_TIME,
    RecordFilter,
    parse_filter,
    session_lookup,
)
from audit_logging.settings import Settings

EXIT_OK: Final = 0
EXIT_DIFFERENCES: Final = 1
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 3
# Each is audit_logging.archive.<name>_command, with add_parser(subparsers).
COMMANDS: Final = ("export", "reindex", "verify")
_log = logging.getLogger("audit_logging.archive")


class Command(Protocol):
    def __call__(self, args: argparse.Namespace, settings: Settings) -> int: ...


class UsageError(AuditLoggingError):
    """A command-line value that cannot be used; the message names the option."""


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_range(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--since", required=required, metavar="WHEN",
                        help="first day or moment (ISO 8601; a date alone is its whole UTC day)")
    parser.add_argument("--until", required=required, metavar="WHEN",
                        help="last day or moment, included (ISO 8601)")


def add_index_prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-prefix", metavar="PREFIX",
                        help="the monthly indices PREFIX-YYYY.MM "
                        "(default: OPENSEARCH_INDEX_PREFIX)")


def index_prefix(args: argparse.Namespace, settings: Settings) -> str:
    given: str | None = args.index_prefix
    if given is None:
        return settings.opensearch_index_prefix
    if not INDEX_PREFIX_RE.fullmatch(given):
        raise UsageError(f"--index-prefix '{shown(given)}' is not an index prefix (lower-case "
                         "letters, digits, '.', '_' or '-', at most 101)")
    return given


def bounded(value: int, name: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise UsageError(f"{name} {value} is out of range ({low} to {high})")
    return value


def add_filters(parser: argparse.ArgumentParser) -> None:
    """The API's search filters, as options (``--user-id``, ``--session``, ...)."""
    for param in FILTER_PARAMS:
        if param in (START_TIME, END_TIME):
            continue
        parser.add_argument(option(param.name), dest=param.name, metavar="VALUE",
                            help=param.doc)
        if param is SESSION:
            parser.add_argument(
                "--session-file", metavar="FILE", dest="session_file",
                help="the raw session key read from FILE ('-': standard input); unlike"
                " --session, it is not shown to other users in the list of processes")


def record_filter(args: argparse.Namespace, settings: Settings) -> RecordFilter:
    values = {START_TIME.name: args.since, END_TIME.name: args.until}
    for param in FILTER_PARAMS:
        given = getattr(args, param.name, None)
        if given is not None and param not in (START_TIME, END_TIME):
            values[param.name] = given
    session_file = getattr(args, "session_file", None)
    if session_file is not None:
        if SESSION.name in values:
            raise UsageError("give --session or --session-file, not both")
        values[SESSION.name] = _read_session(session_file)
    try:
        return parse_filter(values, session_lookup(settings))
    except FilterError as exc:
        names = {START_TIME.name: "--since", END_TIME.name: "--until"}
        raise UsageError(f"{names.get(exc.name, option(exc.name))} {exc.reason}") from None


def _read_session(source: str) -> str:
    """The first line of ``source`` (a file, or '-' for standard input), never echoed."""
    limit = SESSION.limit + 2  # the key and its line end; anything longer is refused below
    try:
        if source == "-":
            text = sys.stdin.readline(limit)
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.readline(limit)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--session-file {shown(source)}: cannot be read "
                         f"({type(exc).__name__})") from None
    return text.removesuffix("\n").removesuffix("\r")


def days_of(search: RecordFilter) -> tuple[dt.date, dt.date]:
    """The days a ranged command covers (both bounds are required)."""
    assert search.start is not None
    assert search.end is not None
    first = search.start.moment.date()
    end = search.end.moment
    last = end.date()
    if not search.end.inclusive and end.time() == dt.time():
        last -= dt.timedelta(days=1)
    return first, last


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m audit_logging.archive",
        description="Read the audit archive in S3: export records, rebuild the search index "
        "from it, check the index and the archive agree.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"audit_logging.archive.{name}_command")
        module.add_parser(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # opensearch-py logs every request, and a failed one with its traceback: the command says
    # in one line what failed instead.
    logging.getLogger("opensearch").setLevel(logging.CRITICAL)
    args = parser().parse_args(argv)
    run: Command = args.run
    settings: Settings | None = None
    try:
        settings = Settings.load()
        return run(args, settings)
    except (UsageError, ConfigurationError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - a service failed: say which, exit 3
        print(f"{args.command}: failed: {failed_service(exc, settings)}{describe_error(exc)}",
              file=sys.stderr)
        return EXIT_FAILED


def failed_service(exc: BaseException, settings: Settings | None) -> str:
    """Which service an error came from, to name it in the one line a failure prints (the
    clients' own messages often do not): "OpenSearch (URL): ", "S3 (s3://BUCKET/PREFIX): "
    or nothing. Neither holds a credential (a host cannot hold one)."""
    if settings is None:
        return ""
    module = type(exc).__module__
    if module.startswith(("opensearchpy", "urllib3")):
        scheme = "https" if settings.opensearch_use_ssl else "http"
        return f"OpenSearch ({scheme}://{settings.opensearch_host}:{settings.opensearch_port}): "
    # pyarrow's S3 errors are plain OSErrors that say "AWS Error ...".
    if module.startswith(("botocore", "boto3", "pyarrow")) or "AWS Error" in str(exc):
        return f"S3 (s3://{settings.s3_bucket}/{settings.s3_prefix}): "
    return ""
