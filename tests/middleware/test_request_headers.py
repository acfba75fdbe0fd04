"""User agent and X-Request-ID as the client sends them: bounded, cleaned, never echoed raw."""

from __future__ import annotations

import re

import pytest

from audit_logging.middleware._request import clean_user_agent, request_id
from tests.middleware._drive import RUNNERS

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_cut_user_agent_is_listed_in_truncated(runner: str) -> None:
    record = RUNNERS[runner]([("User-Agent", "A" * 2000)]).record
    assert record["user_agent"] == "A" * 1024
    assert record["truncated"] == ["user_agent"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_user_agent_at_the_limit_is_not_truncated(runner: str) -> None:
    record = RUNNERS[runner]([("User-Agent", "A" * 1024)]).record
    assert record["user_agent"] == "A" * 1024
    assert record["truncated"] == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_control_characters_in_the_user_agent_are_replaced(runner: str) -> None:
    record = RUNNERS[runner]([("User-Agent", "Evil/1.0\r\nX-Injected: 1\x00\t\x1b[31m\x7f")]).record
    assert record["user_agent"] == "Evil/1.0\ufffd\ufffdX-Injected: 1\ufffd\ufffd\ufffd[31m\ufffd"


@pytest.mark.parametrize("runner", RUNNERS)
def test_user_agent_bytes_are_read_as_utf8_when_they_are(runner: str) -> None:
    record = RUNNERS[runner]([("User-Agent", "Zürich-App/1 ✓".encode())]).record
    assert record["user_agent"] == "Zürich-App/1 ✓"
    record = RUNNERS[runner]([("User-Agent", b"Old/1 \xe9\xff")]).record
    assert record["user_agent"] == "Old/1 éÿ"


def test_clean_user_agent() -> None:
    assert clean_user_agent(None) == (None, False)
    assert clean_user_agent("") == (None, False)
    assert clean_user_agent("x" * 10_000_000) == ("x" * 1024, True)
    # 1,024 characters of 2 UTF-8 bytes each: 2,048 header characters, not cut.
    two_byte = ("é" * 1024).encode().decode("latin-1")
    assert clean_user_agent(two_byte) == ("é" * 1024, False)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    "given", ["req-1\n", "req-1\r\n", "req-1\x00", "req\r\nSet-Cookie: a=b", "\nreq-1", "x" * 129]
)
def test_an_invalid_request_id_is_replaced_and_never_echoed(runner: str, given: str) -> None:
    outcome = RUNNERS[runner]([("X-Request-ID", given)])
    generated = outcome.record["request_id"]
    assert GENERATED.fullmatch(generated)
    assert outcome.request_id_header == generated


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_plain_request_id_is_kept_and_echoed(runner: str) -> None:
    outcome = RUNNERS[runner]([("X-Request-ID", "req-42:a/b+c=d@e")])
    assert outcome.record["request_id"] == "req-42:a/b+c=d@e"
    assert outcome.request_id_header == "req-42:a/b+c=d@e"


def test_request_id() -> None:
    assert request_id("x" * 128) == "x" * 128
    assert GENERATED.fullmatch(request_id("ok\n"))
    assert GENERATED.fullmatch(request_id(None))
