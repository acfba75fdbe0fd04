"""``verify --integrity``: prove the archive unaltered and complete with its digests, without
the search index.

For each stream (the configured stream, or its partitions ``{name}-0`` .. ``{name}-(N-1)``,
and any other stream with a folder under ``{prefix}digest/`` or objects in the archive) the
digest chain is walked, every signature checked, every listed object read and hashed, and the
chain's end compared with the offset the consumer group stored in RabbitMQ under its digest
reference. ``--since``/``--until`` narrow what is read: every digest is still read and
linked, but only the objects of digests whose period meets the range are hashed.

Exit 0 when no problem is found, 1 for problems (each listed with its kind and object key),
2 for bad usage, 3 when S3 or RabbitMQ fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from rstream import Consumer
from rstream.exceptions import StreamDoesNotExist

from audit_logging.archive.cli import EXIT_DIFFERENCES, EXIT_OK, UsageError
from audit_logging.archive.digest_format import digest_reference
from audit_logging.archive.integrity import Window
from audit_logging.archive.integrity_bucket import Bucket
from audit_logging.archive.integrity_check import References, check_archive
from audit_logging.archive.integrity_keys import KeyRing, pinned_keys
from audit_logging.archive.integrity_report import VERB, as_json, text
from audit_logging.archive.progress import TransferProgress
from audit_logging.archive.signing import load_public_key_file
from audit_logging.archive.store import s3_filesystem
from audit_logging.errors import AuditLoggingError, FilterError, describe_error
from audit_logging.partitions import partition_names
from audit_logging.record_filter import END_TIME, START_TIME, parse_filter, session_lookup
from audit_logging.settings import Settings
from audit_logging.stream_offsets import DEFAULT_CONSUMER_NAME, check_consumer_name, stored_offset

RABBITMQ_TIMEOUT: Final = 30.0  # seconds for connecting and reading every reference
STREAM_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,255}")
# Options of verify that compare with the index, which --integrity does not do.
INDEX_OPTIONS: Final = (("repair", "--repair"), ("index_prefix", "--index-prefix"))


class BrokerFailedError(AuditLoggingError):
    """RabbitMQ could not be asked for the stored digest references."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--integrity", action="store_true",
        help="instead of comparing with the index, prove the archive unaltered and complete "
        "with its signed digests: every digest linked, every signature checked, every listed "
        "object hashed, and each chain reaching the offset the consumer stored in RabbitMQ "
        "(--since/--until optional: only objects of digests of that period are hashed)")
    parser.add_argument(
        "--public-key", action="append", metavar="FILE", dest="public_keys", default=[],
        help="with --integrity: a PEM Ed25519 public key to trust instead of those published "
        "in the bucket (repeat it for each key ever used, across rotations)")
    parser.add_argument(
        "--consumer-name", metavar="NAME", default=None,
        help="with --integrity: the consumer group whose stored digest reference each chain "
        f"must reach (default {DEFAULT_CONSUMER_NAME})")


def check_usage(args: argparse.Namespace) -> None:
    """Options that belong to one mode of verify and not the other."""
    if args.integrity:
        for name, flag in INDEX_OPTIONS:
            if getattr(args, name):
                raise UsageError(f"{flag} compares with the index; --integrity does not")
        return
    if args.public_keys or args.consumer_name is not None:
        raise UsageError("--public-key and --consumer-name go with --integrity")
    for name in ("since", "until"):
        if getattr(args, name) is None:
            raise UsageError(f"--{name} is required (unless --integrity)")


def window(args: argparse.Namespace, settings: Settings) -> Window:
    values = {param.name: value for param, value in ((START_TIME, args.since),
                                                     (END_TIME, args.until)) if value is not None}
    try:
        parsed = parse_filter(values, session_lookup(settings))
    except FilterError as exc:
        names = {START_TIME.name: "--since", END_TIME.name: "--until"}
        raise UsageError(f"{names.get(exc.name, exc.name)} {exc.reason}") from None
    end = None
    if parsed.end is not None:
        end = parsed.end.moment
        if parsed.end.inclusive and end < dt.datetime.max.replace(tzinfo=dt.UTC):
            end += dt.timedelta(microseconds=1)
    return Window(None if parsed.start is None else parsed.start.moment, end)


def configured_streams(settings: Settings) -> list[str]:
    name = settings.rabbitmq_stream_name
    count = settings.stream_partitions
    return partition_names(name, count) if count > 1 else [name]


def run(args: argparse.Namespace, settings: Settings) -> int:
    check_usage(args)
    span = window(args, settings)
    pinned = pinned_keys(load_public_key_file(Path(path)) for path in args.public_keys)
    name = check_consumer_name(args.consumer_name or DEFAULT_CONSUMER_NAME)
    bucket_name = settings.require("s3_bucket")
    configured = configured_streams(settings)
    started = time.monotonic()
    bucket = Bucket(s3_filesystem(settings), bucket_name, settings.s3_prefix)
    try:
        # Before the listing: see integrity_check.
        references = read_references(settings, configured, digest_reference(name), bucket)
        report = check_archive(bucket, configured, references, KeyRing(pinned, {}),
                               window=span,
                               progress=lambda count, size: TransferProgress(VERB, count, size))
    finally:
        bucket.close()
    report.seconds = time.monotonic() - started
    if args.json:
        print(json.dumps(as_json(report), indent=2, ensure_ascii=False))
    else:
        print(text(report))
    return EXIT_OK if report.intact else EXIT_DIFFERENCES


def read_references(settings: Settings, configured: Sequence[str], reference: str,
                    bucket: Bucket) -> References:
    """The digest reference stored on each stream that may have a chain: the configured
    ones and those the bucket has a digest folder for."""
    # A folder anyone could have made: only a name that can be a stream's is asked about
    # (another could make the broker refuse the request, and the whole command fail).
    folders = [name for name in bucket.digest_streams() if STREAM_NAME_RE.fullmatch(name)]
    streams = sorted(set(configured) | set(folders))
    try:
        offsets, absent = asyncio.run(asyncio.wait_for(
            _stored(settings, streams, reference), RABBITMQ_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - any failure of the broker (a timeout too): exit 3
        where = f"{settings.rabbitmq_stream_host}:{settings.rabbitmq_stream_port}"
        raise BrokerFailedError(
            f"RabbitMQ ({where}) could not be asked for the stored offsets under "
            f"{reference!r}: {describe_error(exc)}") from None
    return References(reference, offsets, frozenset(absent))


async def _stored(settings: Settings, streams: Sequence[str],
                  reference: str) -> tuple[dict[str, int | None], set[str]]:
    offsets: dict[str, int | None] = {}
    absent: set[str] = set()
    async with Consumer(**settings.stream_client_args(),
                        connection_name="audit-logging verify --integrity") as consumer:
        for stream in streams:
            try:
                offsets[stream] = await stored_offset(consumer, stream, reference)
            except StreamDoesNotExist:
                absent.add(stream)
    return offsets, absent
