"""Every file in ``stray_names/``: a name someone else put where the pipeline lists its own
things, written with digits that ``str.isdigit()`` takes and ``int()`` refuses ('²') or reads
as other numbers ('٢٠٠٠', fullwidth '01'): a monthly index beside ours in the real OpenSearch, a
year/month folder in the real S3 archive, an archive file in today's folder of a real
consumer's stream. Each is passed over: never read as one of ours, never deleted, never a
crash; what is ours around it is still handled.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from audit_logging.archive.store import ArchiveStore
from audit_logging.consumer.retention import delete_expired
from audit_logging.search_index import index_month
from audit_logging.settings import Settings
from tests._stack import opensearch_client, s3_client
from tests.consumer._helpers import bodies_of, make_records, publish, wait_until
from tests.consumer._sinks import opensearch_count
from tests.consumer.conftest import StartConsumer

pytestmark = pytest.mark.services
CORPUS = Path(__file__).parent / "stray_names"


def corpus(kind: str) -> list[Path]:
    return [p for p in sorted(CORPUS.glob("*.json")) if load(p)["kind"] == kind]


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def test_the_corpus_is_there() -> None:
    assert {load(p)["kind"] for p in CORPUS.glob("*.json")} == {
        "index", "archive_folder", "archive_file"
    }


@pytest.mark.parametrize("path", corpus("index"), ids=lambda p: p.stem)
def test_retention_passes_over_a_stray_index_and_deletes_ours(
    path: Path, settings: Settings
) -> None:
    prefix = settings.opensearch_index_prefix
    stray = load(path)["name"].format(prefix=prefix)
    ours = f"{prefix}-2000.01"
    client = opensearch_client(settings)
    try:
        for name in (stray, ours):
            client.indices.create(index=name)
        assert index_month(prefix, stray) is None
        deleted = delete_expired(client, prefix, 12, today=dt.date(2100, 1, 1))
        assert deleted == [ours]
        assert client.indices.exists(index=stray)
        assert not client.indices.exists(index=ours)
    finally:
        client.indices.delete(index=stray, params={"ignore_unavailable": "true"})
        client.close()


@pytest.mark.parametrize("path", corpus("archive_folder"), ids=lambda p: p.stem)
def test_the_archive_passes_over_a_stray_folder(path: Path, settings: Settings) -> None:
    assert settings.s3_bucket is not None
    key = settings.s3_prefix + load(path)["name"]
    s3_client(settings).put_object(Bucket=settings.s3_bucket, Key=key, Body=b"stray")
    store = ArchiveStore(settings)
    assert store.first_month() is None
    assert store.files(dt.date(1999, 1, 1), dt.date(2100, 12, 31)) == []


@pytest.mark.slow
@pytest.mark.parametrize("path", corpus("archive_file"), ids=lambda p: p.stem)
def test_a_consumer_passes_over_a_stray_archive_file_and_archives(
    path: Path, settings: Settings, start_consumer: StartConsumer
) -> None:
    assert settings.s3_bucket is not None
    today = dt.datetime.now(dt.UTC).date()
    folder = f"{settings.s3_prefix}year={today:%Y}/month={today:%m}/day={today:%d}/"
    stray = folder + load(path)["name"].format(stream=settings.rabbitmq_stream_name)
    s3 = s3_client(settings)
    s3.put_object(Bucket=settings.s3_bucket, Key=stray, Body=b"stray")
    publish(settings, bodies_of(make_records(5)))
    consumer = start_consumer("--batch-size", "5")
    wait_until("5 indexed", lambda: opensearch_count(settings), lambda n: n == 5, 60)
    keys = wait_until(
        "an archive file",
        lambda: [o["Key"] for o in s3.list_objects_v2(
            Bucket=settings.s3_bucket, Prefix=folder).get("Contents", [])],
        lambda found: len(found) >= 2,
        60,
    )
    assert stray in keys
    assert consumer.running()
    assert consumer.stop() == 0
    assert "Traceback" not in consumer.log()
