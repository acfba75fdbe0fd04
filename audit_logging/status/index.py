"""The search index side of status: the document count of each monthly index."""

from __future__ import annotations

from typing import Any, Final

from audit_logging.errors import describe_error
from audit_logging.search_index import index_month, index_pattern, make_client
from audit_logging.settings import Settings
from audit_logging.status.figures import Index, MonthlyIndex

# Monthly indices shown at most (a retention of 1,200 months is the settings' limit).
MAX_INDICES: Final = 1200


def read_index(settings: Settings, timeout: float) -> Index:
    """Each ``{prefix}-YYYY.MM`` index with its documents and health, or an :class:`Index`
    whose ``error`` says why OpenSearch could not tell (never raises)."""
    prefix = settings.opensearch_index_prefix
    figures = Index(prefix)
    scheme = "https" if settings.opensearch_use_ssl else "http"
    where = f"{scheme}://{settings.opensearch_host}:{settings.opensearch_port}"
    client = make_client(settings, timeout=timeout, max_retries=0, retry_on_timeout=False)
    try:
        rows: Any = client.cat.indices(
            index=index_pattern(prefix), format="json", h="index,docs.count,health",
            expand_wildcards="all",
        )
        figures.reachable = True
        figures.indices = _monthly(prefix, rows)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised
        figures.error = f"{where}: {describe_error(exc)}"
    finally:
        client.close()
    return figures


def _monthly(prefix: str, rows: Any) -> list[MonthlyIndex]:
    if not isinstance(rows, list):
        raise TypeError(f"_cat/indices answered a {type(rows).__name__}, not a list")
    found = []
    for row in rows:
        name = row.get("index") if isinstance(row, dict) else None
        if not isinstance(name, str) or index_month(prefix, name) is None:
            continue  # another prefix's index that the pattern also matches
        count = row.get("docs.count")
        health = row.get("health")
        found.append(MonthlyIndex(
            name,
            int(count) if isinstance(count, str) and count.isascii() and count.isdigit() else None,
            health if isinstance(health, str) else None,
        ))
    return sorted(found, key=lambda item: item.index)[-MAX_INDICES:]
