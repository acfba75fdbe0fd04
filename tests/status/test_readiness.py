"""A consumer's /readyz as status reads it: a good answer, a 503, nothing listening, and the
URLs it refuses to ask. (tests/hostile/readyz/ has the bad answers.)"""

from __future__ import annotations

import json

import pytest

from audit_logging.status.readiness import ConsumerUrlError, check_url, read_readiness
from tests._ports import free_port
from tests.status._readyz_server import Answer, readyz_server

READY = {"status": "ready", "dependencies": {"broker": True, "opensearch": True, "s3": True},
         "partitions": {"audit-0": "active", "audit-1": "standby"}, "problems": []}


def test_a_ready_consumer() -> None:
    with readyz_server(Answer(200, json.dumps(READY).encode())) as server:
        answer = read_readiness(server.url)
    assert server.requests[0].startswith(b"GET /readyz HTTP/1.1\r\n")
    assert (answer.reachable, answer.http_status, answer.ready, answer.error) == (
        True, 200, True, None)
    assert answer.partitions == {"audit-0": "active", "audit-1": "standby"}
    assert answer.dependencies == {"broker": True, "opensearch": True, "s3": True}


def test_a_consumer_that_is_not_ready_says_why() -> None:
    body = READY | {"status": "not ready", "dependencies": {"broker": True, "opensearch": False},
                    "problems": ["opensearch: ConnectionError"]}
    with readyz_server(Answer(503, json.dumps(body).encode())) as server:
        answer = read_readiness(server.url + "/")
    assert (answer.ready, answer.error, answer.problems) == (
        False, None, ["opensearch: ConnectionError"])
    assert answer.dependencies["opensearch"] is False


def test_nothing_listening_is_unreachable() -> None:
    answer = read_readiness(f"http://127.0.0.1:{free_port()}")
    assert not answer.reachable
    assert answer.error is not None and answer.error.startswith("unreachable: ")


@pytest.mark.parametrize("url", [
    "ftp://host:1", "host:9108", "http://", "http://user:secret@host:9108",
    "http://host:9108/?x=1", "http://host:99999",
])
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(ConsumerUrlError) as caught:
        check_url(url)
    assert "--consumer-url" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_url_is_kept_without_its_trailing_slash() -> None:
    assert check_url("https://consumer-1.internal:9108/") == "https://consumer-1.internal:9108"
