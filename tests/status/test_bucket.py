"""How status finds the newest archive object, digest and dead letters in the real S3 server
without listing everything: newest folder first, a folder dated in the future passed over,
a busy folder's last key found by probing, another stream's keys under the same prefix
passed over, and the dead-letter listing bounded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import pytest

from audit_logging.archive.digest_format import digest_key
from audit_logging.archive.layout import archive_key
from audit_logging.settings import Settings
from audit_logging.status import bucket
from audit_logging.status.bucket import make_client, read_archive
from tests._ports import free_port

pytestmark = [pytest.mark.services]


def _put(client: Any, settings: Settings, *keys: str) -> None:
    for key in keys:
        client.put_object(Bucket=settings.s3_bucket, Key=key, Body=b"x")


def _days(offset: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset)).isoformat()


def test_the_newest_folders_and_the_last_keys_of_a_busy_day(settings: Settings) -> None:
    client = make_client(settings)
    prefix = settings.s3_prefix
    today, older, future = _days(0), _days(-40), _days(60)
    busy = [archive_key(prefix, "s", today, first, first + 9) for first in range(0, 350, 10)]
    _put(client, settings, archive_key(prefix, "s", older, 0, 5),
         archive_key(prefix, "s", future, 900, 901), *busy,
         # Another stream whose name starts with "s-": its keys share the prefix "s-".
         archive_key(prefix, "s-1", today, 0, 1), archive_key(prefix, "s-9", today, 7, 8))
    moment = dt.datetime.now(dt.UTC)
    digests = [digest_key(prefix, "s", moment - dt.timedelta(days=3), 0, 99),
               *(digest_key(prefix, "s", moment, first, first + 99)
                 for first in range(100, 2600, 100))]
    _put(client, settings, *digests)
    # A page of 10 keys: the busy day's 35 objects of "s" need the probing.
    figures = read_archive(settings, ["s"], 60, page=10)
    assert figures.error is None and figures.reachable
    newest = figures.newest_object
    assert newest is not None
    # The folder's newest by time; among objects of the same second, the last key.
    assert newest.key in {busy[-1], archive_key(prefix, "s-9", today, 7, 8)}
    (digest,) = figures.digests
    assert (digest.key, digest.last_offset) == (digests[-1], 2599)
    lister = bucket._Lister(client, str(settings.s3_bucket), time.monotonic() + 60, 10)
    folder = busy[0].rsplit("/", 1)[0] + "/"
    last = lister.last(f"{folder}s-")
    assert last is not None and last.key == busy[-1]
    assert lister.last(f"{folder}t-") is None


def test_dead_letters_of_the_last_day_and_the_bound_of_their_listing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(settings)
    letters = [f"{settings.s3_prefix}dead-letter/s-{first:020d}-{first:020d}.ndjson"
               for first in range(3)]
    _put(client, settings, *letters)
    figures = read_archive(settings, ["s"], 60)
    assert (figures.dead_letters.objects, figures.dead_letters.bytes,
            figures.dead_letters.complete) == (3, 3, True)
    assert figures.dead_letters.newest is not None
    assert figures.newest_object is None and figures.digests[0].key is None
    monkeypatch.setattr(bucket, "DEAD_LETTER_PAGES", 2)
    bounded = read_archive(settings, ["s"], 60, page=1)
    assert (bounded.dead_letters.objects, bounded.dead_letters.complete) == (2, False)


def test_s3_out_of_reach_is_reported_not_raised(settings: Settings) -> None:
    gone = dataclasses.replace(settings, aws_endpoint_url_s3=f"http://127.0.0.1:{free_port()}")
    figures = read_archive(gone, ["s"], 10)
    assert not figures.reachable
    assert figures.error is not None
    assert figures.error.startswith(f"s3://{settings.s3_bucket}/{settings.s3_prefix}: ")
    assert "secret" not in figures.error.lower()
