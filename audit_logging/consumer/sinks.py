"""The clients of one stream's consumer that write: OpenSearch's indexer and the S3 archive
(with its digest chain), made once and told where the metrics go."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit_logging.consumer.archiver import Archiver
from audit_logging.consumer.digests import DigestChain
from audit_logging.consumer.metrics import Recorder
from audit_logging.consumer.object_lock import ObjectLock
from audit_logging.consumer.options import ConsumerOptions
from audit_logging.consumer.s3 import S3Store, make_s3_client
from audit_logging.indexer import Indexer
from audit_logging.retry import Waiter
from audit_logging.search_index import make_client

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from audit_logging.archive.signing import Signer
    from audit_logging.settings import Settings


@dataclass(frozen=True, slots=True)
class Sinks:
    opensearch: OpenSearch
    store: S3Store
    indexer: Indexer
    archiver: Archiver


def make_sinks(
    settings: Settings,
    options: ConsumerOptions,
    stream: str,
    abandon: threading.Event,
    metrics: Recorder,
    *,
    opensearch: OpenSearch | None,
    signer: Signer | None,
    on_uploaded: Callable[[str], None] | None,
) -> Sinks:
    client = opensearch or make_client(settings, timeout=60, max_retries=0)
    store = S3Store(
        make_s3_client(settings),
        settings.require("s3_bucket"),
        abandon,
        multipart_threshold=options.multipart_threshold,
        part_size=options.multipart_part_size,
        lock=ObjectLock.from_settings(settings),
        on_retry=(lambda: metrics.retry("s3")) if metrics.enabled else None,
        on_put=metrics.s3_put_seconds if metrics.enabled else None,
    )

    def opensearch_waiter() -> Waiter:
        return Waiter("OpenSearch", abandon, on_retry=lambda: metrics.retry("opensearch"))

    indexer = Indexer(
        client,
        settings.opensearch_index_prefix,
        abandon,
        max_docs=options.bulk_max_docs,
        max_bytes=options.bulk_max_bytes,
        waiter=opensearch_waiter if metrics.enabled else None,
        on_bulk=metrics.bulk_seconds if metrics.enabled else None,
    )
    digests = DigestChain(
        store, settings.s3_prefix, stream, options.consumer_name, settings.digest_interval, signer
    )
    archiver = Archiver(store, settings.s3_prefix, stream, digests, on_uploaded)
    return Sinks(client, store, indexer, archiver)
