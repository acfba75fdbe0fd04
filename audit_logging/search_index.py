"""Where and how records live in OpenSearch: index names, the index template, clients.

Shared by the consumer (which writes), the API (which reads) and the archive's commands
(which rebuild and check), so all agree on names, mappings and retention.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from audit_logging.errors import MissingExtraError
from audit_logging.record import parse_timestamp
from audit_logging.schema import FIELDS

if TYPE_CHECKING:
    from opensearchpy import AsyncOpenSearch, OpenSearch

    from audit_logging.settings import Settings

# One mapping per record field (audit_logging.schema). "strict" so a stray field is a
# mapping error (dead-lettered by the consumer), never a mapping explosion.
MAPPINGS: Final[dict[str, Any]] = {
    "dynamic": "strict",
    "properties": {
        **{field.name: field.mapping() for field in FIELDS},
        # Not a record field (the API never shows it): where the consumer read the record,
        # which tells a replay of that message from a reused log_id (audit_logging/write_once.py).
        "stream_position": {"type": "keyword"},
    },
}


def index_pattern(prefix: str) -> str:
    """What searches and retention address: every monthly index of ``prefix``."""
    return f"{prefix}-*"


def index_for(prefix: str, timestamp: str | dt.datetime) -> str:
    """The monthly index of a record: ``{prefix}-YYYY.MM`` by its UTC timestamp."""
    if isinstance(timestamp, str) and _is_checked_utc(timestamp):
        # A checked record's "YYYY-MM-DDT...Z": slicing is exact and much cheaper than
        # parsing, which the consumer would otherwise do for every record.
        return f"{prefix}-{timestamp[:4]}.{timestamp[5:7]}"
    moment = parse_timestamp(timestamp) if isinstance(timestamp, str) else timestamp
    moment = moment.astimezone(dt.UTC)
    return f"{prefix}-{moment.year:04d}.{moment.month:02d}"


def _is_checked_utc(timestamp: str) -> bool:
    return (
        len(timestamp) == 27
        and timestamp.endswith("Z")
        and timestamp[4] == "-"
        and timestamp[7] == "-"
        and timestamp[10] == "T"
        and timestamp[:7].isascii()  # str.isdigit alone takes '²' (which int() refuses)
        and timestamp[:4].isdigit()
        and timestamp[5:7].isdigit()
    )


def index_month(prefix: str, index: str) -> tuple[int, int] | None:
    """(year, month) of one of ``prefix``'s monthly indices, None for any other name."""
    rest = index.removeprefix(f"{prefix}-")
    if rest == index or len(rest) != 7 or rest[4] != ".":
        return None
    year, month = rest[:4], rest[5:]
    # ASCII only: an index named with '²' or '٣' digits is not the consumer's (and int()
    # refuses '²').
    if not (rest.isascii() and year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        return None
    return int(year), int(month)


def expired(prefix: str, index: str, months: int, today: dt.date) -> bool:
    """Whether ``index`` (one of ``prefix``'s monthly indices) is past a retention of
    ``months`` whole months on ``today``: the consumer deletes it, and rebuilding it from the
    archive would only see it deleted again."""
    month = index_month(prefix, index)
    if month is None:
        return False
    age = (today.year * 12 + today.month) - (month[0] * 12 + month[1])
    return age > months


def first_retained_day(months: int, today: dt.date) -> dt.date:
    """The first day of the oldest month whose index a retention of ``months`` keeps (the
    month :func:`expired` calls ``months`` old): the line between the index and the archive
    for the API, reindex and verify alike."""
    index = today.year * 12 + today.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def index_template(prefix: str) -> dict[str, Any]:
    """The composable index template every ``{prefix}-YYYY.MM`` index is created from."""
    return {
        "index_patterns": [index_pattern(prefix)],
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": 1,
                # One replica where a second node exists, none on a single node.
                "auto_expand_replicas": "0-1",
                # A record is searchable within 2 s of being logged.
                "refresh_interval": "1s",
            },
            "mappings": MAPPINGS,
        },
    }


def install_template(client: OpenSearch, prefix: str) -> None:
    client.indices.put_index_template(name=prefix, body=index_template(prefix))
    # Indices created from an older template get the field added since.
    added = ("stream_position",)
    client.indices.put_mapping(
        index=index_pattern(prefix),
        body={"properties": {name: MAPPINGS["properties"][name] for name in added}},
        params={"allow_no_indices": "true", "expand_wildcards": "open"},
    )


def _client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "hosts": [{"host": settings.opensearch_host, "port": settings.opensearch_port}],
        "use_ssl": settings.opensearch_use_ssl,
        "verify_certs": settings.opensearch_verify_certs,
        "ssl_show_warn": False,
    }
    if settings.opensearch_username is not None:
        password = settings.opensearch_password
        options["http_auth"] = (settings.opensearch_username, password.get() if password else "")
    return options


def make_client(settings: Settings, **options: Any) -> OpenSearch:
    """A blocking client (for the consumer's worker threads)."""
    try:
        from opensearchpy import OpenSearch
    except ImportError:
        raise MissingExtraError("consumer", "opensearch-py") from None
    return OpenSearch(**(_client_options(settings) | options))


def make_async_client(settings: Settings, **options: Any) -> AsyncOpenSearch:
    """An asyncio client (for the API)."""
    try:
        from opensearchpy import AsyncOpenSearch
    except ImportError:
        raise MissingExtraError("api", "opensearch-py[async]") from None
    return AsyncOpenSearch(**(_client_options(settings) | options))
