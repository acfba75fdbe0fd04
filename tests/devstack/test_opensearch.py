"""The local OpenSearch is real: bulk indexing and the query DSL work."""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy import helpers

from audit_logging.settings import Settings
from tests._stack import opensearch_client

pytestmark = pytest.mark.services


def test_answers_as_opensearch_2_19(stack_settings: Settings) -> None:
    client = opensearch_client(stack_settings)
    info = client.info()
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"].startswith("2.19.")


def test_thousand_documents_found_by_bool_query_with_range_and_match(
    stack_settings: Settings, index_prefix: str
) -> None:
    client = opensearch_client(stack_settings)
    index = f"{index_prefix}-2026.01"
    client.indices.create(
        index=index,
        body={
            "mappings": {
                "properties": {
                    "timestamp": {"type": "date"},
                    "action": {"type": "keyword"},
                    "ip_address": {"type": "ip"},
                    "change_message": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                }
            }
        },
    )
    docs: list[dict[str, Any]] = [
        {
            "_index": index,
            "_id": f"id-{i}",
            "timestamp": f"2026-01-{1 + i % 28:02d}T12:00:00.000000Z",
            "action": "DELETE" if i % 10 == 0 else "UPDATE",
            "ip_address": f"10.0.{i // 256}.{i % 256}",
            "change_message": f"customer {i} {'archived' if i % 4 == 0 else 'edited'}",
        }
        for i in range(1000)
    ]
    ok, errors = helpers.bulk(client, docs, refresh="wait_for")
    assert ok == 1000 and not errors
    assert client.count(index=f"{index_prefix}-*")["count"] == 1000

    query = {
        "bool": {
            "filter": [
                {
                    "range": {
                        "timestamp": {"gte": "2026-01-01T00:00:00Z", "lt": "2026-01-15T00:00:00Z"}
                    }
                },
                {"term": {"action": "DELETE"}},
                {"term": {"ip_address": "10.0.0.0/16"}},
            ],
            "must": [{"match": {"change_message": "archived"}}],
        }
    }
    result = client.search(
        index=f"{index_prefix}-*",
        body={
            "query": query,
            "size": 1000,
            "track_total_hits": True,
        },
    )
    expected = {f"id-{i}" for i in range(1000) if i % 10 == 0 and i % 4 == 0 and 1 + i % 28 < 15}
    assert {hit["_id"] for hit in result["hits"]["hits"]} == expected
    assert result["hits"]["total"]["value"] == len(expected) > 0
