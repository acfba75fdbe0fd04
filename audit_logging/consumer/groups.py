"""One consumer group archives a stream into an S3 prefix; a second group is refused.

Consumers sharing a ``--consumer-name`` are one RabbitMQ single-active-consumer group: the
broker lets one read and keeps the others as standbys, and they share one stored offset, so
between them every record is archived once. Two groups have two offsets and would each write
every record, under different keys (their batches close at different offsets), so the
archive would hold it twice. The first group to start on a stream claims the prefix with a
create-only marker object ``{AUDIT_LOG_S3_PREFIX}_consumer-groups/{stream}.json`` naming it;
a consumer of another name finds the marker and stops with a configuration error. Deleting
the marker (with the old group stopped) hands the archive to the next group that starts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Final

from audit_logging.consumer.options import check_consumer_name
from audit_logging.consumer.s3 import S3Store, is_missing
from audit_logging.errors import ConfigurationError

MARKER_DIR: Final = "_consumer-groups/"
_log = logging.getLogger("audit_logging.consumer")


def marker_key(s3_prefix: str, stream: str) -> str:
    return f"{s3_prefix}{MARKER_DIR}{stream}.json"


_MARKER_LIMIT: Final = 4096


def _owner(data: bytes) -> str:
    """The group a marker names, or a placeholder: the marker is read back from S3, where
    anyone with write access may have put anything (it goes into an error message)."""
    if len(data) > _MARKER_LIMIT:
        return "<unreadable marker>"
    try:
        owner = json.loads(data)["consumer_group"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return "<unreadable marker>"
    try:
        # Only a name --consumer-name takes: anything else in a marker is not ours.
        return check_consumer_name(owner) if isinstance(owner, str) else "<unreadable marker>"
    except ConfigurationError:
        return "<unreadable marker>"


def claim_archive(store: S3Store, s3_prefix: str, stream: str, group: str) -> None:
    """Claim the archive of ``stream`` under ``s3_prefix`` for ``group``, or refuse.

    Blocking (S3 calls, retried while S3 is unavailable): run it in a worker thread.
    """
    key = marker_key(s3_prefix, stream)
    body = json.dumps(
        {
            "consumer_group": group,
            "stream": stream,
            "claimed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    ).encode()
    # Two tries: the marker may be deleted between our create and our read (a hand-over).
    for _ in range(2):
        # Never under Object Lock retention: deleting the marker hands the archive over.
        if store.put_create_only(key, body, "application/json", retain=False):
            _log.info(
                "consumer group '%s' now archives stream '%s' into s3://%s/%s (marker %s)",
                group,
                stream,
                store.bucket,
                s3_prefix,
                key,
            )
            return
        try:
            owner = _owner(store.get(key))
        except Exception as exc:
            if not is_missing(exc):
                raise
            continue
        if owner == group:
            return
        raise ConfigurationError(
            "--consumer-name / AUDIT_LOG_S3_PREFIX",
            f"stream '{stream}' is archived into s3://{store.bucket}/{s3_prefix} by consumer "
            f"group '{owner}' (marker {key}), and this consumer is '{group}'. Start it with "
            f"--consumer-name {owner} to join that group as a standby, or give it its own "
            f"AUDIT_LOG_S3_PREFIX; to hand the archive over to '{group}', stop group "
            f"'{owner}' and delete the marker",
        )
    raise ConfigurationError(
        "AUDIT_LOG_S3_PREFIX", f"the marker {key} keeps appearing and disappearing; try again"
    )
