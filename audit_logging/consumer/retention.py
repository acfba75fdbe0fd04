"""Index retention: monthly indices older than AUDIT_LOG_RETENTION_MONTHS are deleted.

An index's age is its name's month: ``{prefix}-2025.02`` holds February 2025 and is deleted
once more than ``months`` whole months separate it from the current one (with 12 months,
in March 2026; it is kept through February 2026). S3, the source of truth, is never touched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from audit_logging.errors import describe_error
from audit_logging.search_index import expired, index_pattern

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

_log = logging.getLogger("audit_logging.consumer")
__all__ = ["delete_expired", "expired", "run_retention"]


def delete_expired(
    client: OpenSearch, prefix: str, months: int, today: dt.date | None = None
) -> list[str]:
    """Delete ``prefix``'s expired monthly indices; returns their names."""
    today = today or dt.datetime.now(dt.UTC).date()
    rows = client.cat.indices(
        index=index_pattern(prefix),
        params={"format": "json", "h": "index", "expand_wildcards": "all"},
    )
    names = sorted(row["index"] for row in rows if expired(prefix, row["index"], months, today))
    for name in names:
        # One exact name per call: never a wildcard delete.
        client.indices.delete(index=name, params={"ignore_unavailable": "true"})
        _log.info("retention: deleted index %s (older than %d months)", name, months)
    return names


async def run_retention(client: OpenSearch, prefix: str, months: int, interval: float) -> None:
    """Delete expired indices now and every ``interval`` seconds, until cancelled."""
    while True:
        try:
            await asyncio.to_thread(delete_expired, client, prefix, months)
        except Exception as exc:  # noqa: BLE001 - retention waits for the next round
            _log.warning("retention: %s; trying again in an hour", describe_error(exc))
            await asyncio.sleep(min(3600.0, interval))
            continue
        await asyncio.sleep(interval)
