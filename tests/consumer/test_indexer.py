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

from audit_logging.indexer import Indexer
from audit_logging.retry import AbandonedError
from tests.consumer._helpers import make_records

Answer = Callable[[list[dict[str, Any]]], dict[str, Any]]


class ScriptedClient:
    """Answers each bulk request with the next scripted answer, recording what it was sent."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[list[dict[str, Any]]] = []
        # What the write-once lookup finds (searchable) and what a real-time get finds.
        self.searchable: dict[str, tuple[str, dict[str, Any]]] = {}
        self.stored: dict[str, tuple[str, dict[str, Any]]] = {}
        self.searches: list[dict[str, Any]] = []

    def search(self, index: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        self.searches.append({"index": index, **body})
        ids = body["query"]["terms"]["log_id"]
        hits = [
            {"_id": i, "_index": self.searchable[i][0], "_source": self.searchable[i][1]}
            for i in ids
            if i in self.searchable
        ]
        return {"_shards": {"failed": 0}, "hits": {"hits": hits}}

    def mget(self, body: dict[str, Any]) -> dict[str, Any]:
        docs = []
        for doc in body["docs"]:
            found = self.stored.get(doc["_id"])
            if found is None or found[0] != doc["_index"]:
                docs.append({**doc, "found": False})
            else:
                docs.append({**doc, "found": True, "_source": found[1]})
        return {"docs": docs}

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
    assert [d["action"]["create"]["_id"] for d in request] == [r["log_id"] for r in records]
    month = records[0]["timestamp"][:7].replace("-", ".")
    assert [d["action"]["create"]["_index"] for d in request] == [
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


# -- write-once ------------------------------------------------------------------------------


def test_a_log_id_held_in_any_month_is_not_written_again() -> None:
    records = make_records(4)
    client = ScriptedClient()
    ids = [r["log_id"] for r in records]
    # 0: a replay of the message that wrote it (same position); 1: the same record read at
    # another position (a resend); 2: a reused log_id, first written in another month.
    client.searchable[ids[0]] = ("logs-2024.01", {**records[0], "stream_position": "s:10"})
    client.searchable[ids[1]] = ("logs-2024.01", {**records[1], "stream_position": "s:5"})
    client.searchable[ids[2]] = ("logs-2019.07", {**records[2], "action": "LOGIN"})
    positions = ["s:10", "s:11", "s:12", "s:13"]
    refusals = indexer(client).index(records, positions)
    assert [(r.position, r.code) for r in refusals] == [(1, "resend"), (2, "duplicate_log_id")]
    assert "logs-2019.07" in refusals[1].reason and ids[2] in refusals[1].reason
    # One lookup across every month, then only the new record is created.
    [search] = client.searches
    assert search["index"] == "logs-*" and search["query"]["terms"]["log_id"] == ids
    [request] = client.requests
    assert [d["action"]["create"]["_id"] for d in request] == [ids[3]]
    assert request[0]["doc"] == {**records[3], "stream_position": "s:13"}


def test_a_conflict_the_lookup_could_not_see_yet_is_read_back_and_compared() -> None:
    records = make_records(3)
    month = "logs-" + records[0]["timestamp"][:7].replace("-", ".")
    client = ScriptedClient(statuses(409, 409, 201))
    # Written less than a refresh ago: not searchable yet, but a real-time get sees it.
    client.stored[records[0]["log_id"]] = (month, {**records[0], "action": "EXPORT"})
    client.stored[records[1]["log_id"]] = (month, {**records[1], "stream_position": "s:1"})
    refusals = indexer(client).index(records, ["s:0", "s:1", "s:2"])
    # 0 is a reused log_id; 1 is this very message written before a crash (indexed).
    assert [(r.position, r.code) for r in refusals] == [(0, "duplicate_log_id")]
    assert len(client.requests) == 1


def test_a_conflicting_document_that_vanished_is_created_again() -> None:
    records = make_records(1)
    client = ScriptedClient(statuses(409), statuses(201))
    assert indexer(client).index(records, ["s:0"]) == []
    assert len(client.requests) == 2


def test_a_record_whose_action_cannot_be_built_is_refused_alone() -> None:
    records = make_records(2)
    records[0] = {**records[0], "timestamp": "9999-12-31T23:59:59-01:00"}
    client = ScriptedClient()
    [refusal] = indexer(client).index(records)
    assert (refusal.position, refusal.code) == (0, "index_action")
    assert refusal.reason.startswith("index_action: ") and "Error: " in refusal.reason
    assert [d["doc"]["log_id"] for d in client.requests[0]] == [records[1]["log_id"]]
