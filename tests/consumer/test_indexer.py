"""Bulk indexing, item by item: busy items retried, refused ones returned, outages waited out.
Against a scripted client, so each OpenSearch answer can be chosen."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from audit_logging.consumer.indexer import Indexer
from audit_logging.consumer.retry import AbandonedError
from tests.consumer._helpers import make_records

Answer = Callable[[list[dict[str, Any]]], dict[str, Any]]


class ScriptedClient:
    """Answers each bulk request with the next scripted answer, recording what it was sent."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[list[dict[str, Any]]] = []

    def bulk(self, body: bytes, params: dict[str, str]) -> dict[str, Any]:
        lines = body.decode().splitlines()
        docs = [
            {"action": json.loads(a), "doc": json.loads(d)}
            for a, d in zip(lines[::2], lines[1::2], strict=True)
        ]
        self.requests.append(docs)
        answer = self.answers.pop(0) if self.answers else ok
        if isinstance(answer, Exception):
            raise answer
        return answer(docs)


def ok(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": False, "items": [{"index": {"status": 201}} for _ in docs]}


def statuses(*codes: int) -> Answer:
    def answer(docs: list[dict[str, Any]]) -> dict[str, Any]:
        items = []
        for doc, code in zip(docs, codes, strict=True):
            item: dict[str, Any] = {"status": code}
            if code >= 300:
                item["error"] = {"type": f"error_{code}", "reason": f"for {doc['doc']['log_id']}"}
            items.append({"index": item})
        return {"errors": any(c >= 300 for c in codes), "items": items}

    return answer


def indexer(client: ScriptedClient, **options: Any) -> Indexer:
    return Indexer(client, "logs", threading.Event(), **options)  # type: ignore[arg-type]


def test_documents_go_to_their_month_with_the_log_id_as_id() -> None:
    records = make_records(3)
    records[1]["timestamp"] = "2024-02-29T23:59:59.999999Z"
    client = ScriptedClient()
    assert indexer(client).index(records) == []
    [request] = client.requests
    assert [d["action"]["index"]["_id"] for d in request] == [r["log_id"] for r in records]
    month = records[0]["timestamp"][:7].replace("-", ".")
    assert [d["action"]["index"]["_index"] for d in request] == [
        f"logs-{month}",
        "logs-2024.02",
        f"logs-{month}",
    ]
    assert [d["doc"] for d in request] == records


def test_busy_items_are_retried_alone_and_refused_ones_returned() -> None:
    records = make_records(4)
    client = ScriptedClient(statuses(201, 429, 400, 503), statuses(503, 201), statuses(201))
    refusals = indexer(client).index(records)
    assert [r.position for r in refusals] == [2]
    assert refusals[0].status == 400
    assert refusals[0].reason == f"error_400: for {records[2]['log_id']}"
    sent = [[d["doc"]["log_id"] for d in request] for request in client.requests]
    ids = [r["log_id"] for r in records]
    assert sent == [ids, [ids[1], ids[3]], [ids[1]]]


def test_an_unreachable_or_failing_cluster_is_waited_out() -> None:
    records = make_records(2)
    client = ScriptedClient(
        OpenSearchConnectionError("N/A", "refused", Exception("refused")),
        TransportError(503, "cluster_block_exception", {}),
        TransportError(429, "es_rejected_execution_exception", {}),
        ok,
    )
    assert indexer(client).index(records) == []
    assert len(client.requests) == 4


def test_a_request_too_large_is_halved_until_it_fits() -> None:
    records = make_records(4)
    client = ScriptedClient(TransportError(413, "too large", {}), ok, TransportError(413, "x", {}))
    refusals = indexer(client).index(records)
    assert refusals == []
    sizes = [len(request) for request in client.requests]
    assert sizes == [4, 2, 2, 1, 1]


def test_large_inputs_are_sent_in_several_requests() -> None:
    records = make_records(25)
    client = ScriptedClient()
    indexer(client, max_docs=10).index(records)
    assert [len(request) for request in client.requests] == [10, 10, 5]
    client = ScriptedClient()
    indexer(client, max_bytes=2000).index(records)
    assert len(client.requests) > 3 and sum(map(len, client.requests)) == 25


def test_shutdown_can_abandon_a_wait_for_an_unreachable_cluster() -> None:
    abandon = threading.Event()
    failure = OpenSearchConnectionError("N/A", "refused", Exception("refused"))
    client = ScriptedClient(*[failure] * 1000)
    timer = threading.Timer(0.3, abandon.set)
    timer.start()
    with pytest.raises(AbandonedError):
        Indexer(client, "logs", abandon).index(make_records(1))  # type: ignore[arg-type]
    timer.join()
