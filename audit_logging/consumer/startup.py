"""Before a consumer reads: the index template installed, the bucket there, and the archive
of its stream claimed for its group. Each waits for its service as long as it takes (or
until the consumer is stopped); a refusal that waiting cannot cure is a ConfigurationError."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import TYPE_CHECKING

from opensearchpy.exceptions import TransportError

from audit_logging.consumer.groups import claim_archive
from audit_logging.consumer.s3 import S3Store
from audit_logging.errors import ConfigurationError, describe_error
from audit_logging.retry import Waiter, sleep_or_stop
from audit_logging.search_index import install_template

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from audit_logging.settings import Settings


async def prepare_sinks(
    settings: Settings,
    opensearch: OpenSearch,
    store: S3Store,
    *,
    stream: str,
    group: str,
    stopping: asyncio.Event,
    abandon: threading.Event,
) -> None:
    prefix = settings.opensearch_index_prefix
    waiter = Waiter("OpenSearch (index template)", abandon)
    while not stopping.is_set():
        try:
            await asyncio.to_thread(install_template, opensearch, prefix)
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            if 400 <= status < 500 and status not in (408, 429):
                # Refused, not unavailable (say the prefix overlaps another template's).
                raise ConfigurationError(
                    "OPENSEARCH_INDEX_PREFIX",
                    f"OpenSearch refuses the index template for {prefix!r}: "
                    f"{describe_error(exc)}",
                ) from None
            await waiter.pause(describe_error(exc), stopping)
        except Exception as exc:  # noqa: BLE001 - whatever the client raises, we wait
            await waiter.pause(describe_error(exc), stopping)
        else:
            waiter.succeeded()
            break
    if not stopping.is_set():
        await sleep_or_stop(asyncio.to_thread(store.check_bucket), stopping)
    if not stopping.is_set():
        # One marker per stream read (each partition of a super stream): a group reading a
        # partition stream directly is refused as a group reading the super stream is.
        claim = functools.partial(claim_archive, store, settings.s3_prefix, stream, group)
        await sleep_or_stop(asyncio.to_thread(claim), stopping)
