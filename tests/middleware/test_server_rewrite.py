"""The one warning that the server already rewrote the client's address from a forwarding
header (uvicorn's default ``--proxy-headers``): when it is given, and when it is not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from audit_logging.middleware._server_rewrite import (
    MAX_HEADER_CHARS,
    notice_rewritten_client,
    rewritten_from,
)
from tests.middleware._drive import RUNNERS


@pytest.fixture
def warnings_seen() -> Iterator[list[logging.LogRecord]]:
    """The library's warnings while the test runs, the once-per-process notice reset."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record)

    keep = Keep()
    library = logging.getLogger("audit_logging")
    library.addHandler(keep)
    notice_rewritten_client.reset()
    try:
        yield seen
    finally:
        library.removeHandler(keep)
        notice_rewritten_client.reset()


@pytest.mark.parametrize(
    ("peer", "port", "headers", "header"),
    [
        # uvicorn: the hop's text, port 0 when the hop has none.
        ("203.0.113.9", 0, {"x-forwarded-for": "203.0.113.9"}, "X-Forwarded-For"),
        ("203.0.113.9", 0, {"x-forwarded-for": "203.0.113.9, 127.0.0.1"}, "X-Forwarded-For"),
        ("198.51.100.7", 4711, {"x-forwarded-for": "198.51.100.7:4711"}, "X-Forwarded-For"),
        ("2001:db8::1", 4711, {"x-forwarded-for": "[2001:db8::1]:4711"}, "X-Forwarded-For"),
        ("2001:db8::1", 0, {"x-forwarded-for": "[2001:DB8:0::1]"}, "X-Forwarded-For"),
        ("::ffff:203.0.113.9", 0, {"x-forwarded-for": "203.0.113.9"}, "X-Forwarded-For"),
        ("not-an-ip", 0, {"x-forwarded-for": "not-an-ip"}, "X-Forwarded-For"),
        # Hypercorn's ProxyFixMiddleware in its "modern" mode reads Forwarded.
        ("2001:db8::1", 4711, {"forwarded": 'for="[2001:db8::1]:4711"'}, "Forwarded"),
        ("203.0.113.9", 0, {"forwarded": "for=192.0.2.1, For=203.0.113.9;proto=https"},
         "Forwarded"),
    ],
)
def test_a_peer_taken_from_a_header_is_noticed(
    peer: str, port: int, headers: dict[str, str], header: str
) -> None:
    assert rewritten_from(peer, port, headers) == header


@pytest.mark.parametrize(
    ("peer", "port", "headers"),
    [
        # A direct client naming itself in a header it forged still has its real port.
        ("198.51.100.7", 40000, {"x-forwarded-for": "198.51.100.7"}),
        ("198.51.100.7", 40000, {"x-forwarded-for": "198.51.100.7:1234"}),
        ("198.51.100.7", 40000, {"forwarded": "for=198.51.100.7"}),
        # A proxy's own hop is never the peer with port 0 unless the server chose it.
        ("10.0.0.5", 0, {"x-forwarded-for": "203.0.113.9"}),
        ("10.0.0.5", 0, {}),
        # No port known (a WSGI server without REMOTE_PORT): nothing can be told.
        ("203.0.113.9", None, {"x-forwarded-for": "203.0.113.9"}),
        # Past the size bound the header is not read.
        ("203.0.113.9", 0, {"x-forwarded-for": "1.1.1.1, " * (MAX_HEADER_CHARS // 9)
                                                + "203.0.113.9"}),
    ],
)
def test_a_direct_peer_is_not_taken_for_a_rewrite(
    peer: str, port: int | None, headers: dict[str, str]
) -> None:
    assert rewritten_from(peer, port, headers) is None


def test_one_warning_per_process_naming_the_flags(warnings_seen: list[logging.LogRecord]) -> None:
    headers = {"x-forwarded-for": "203.0.113.9"}
    assert notice_rewritten_client("203.0.113.9", 0, headers)
    assert not notice_rewritten_client("203.0.113.9", 0, headers)
    (warning,) = warnings_seen
    text = warning.getMessage()
    for named in ("--no-proxy-headers", "proxy_headers=False", "--forwarded-allow-ips=''",
                  "trusted_proxies",
                  "'203.0.113.9'", "X-Forwarded-For"):
        assert named in text, text


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_middleware_warns_once_for_many_rewritten_requests(
    runner: str, warnings_seen: list[logging.LogRecord]
) -> None:
    headers = [("X-Forwarded-For", "203.0.113.9")]
    for _ in range(3):
        outcome = RUNNERS[runner](headers, client="203.0.113.9", port=0,
                                  trusted_proxies=["10.0.0.0/8"])
        assert outcome.record["ip_address"] == "203.0.113.9"  # what the server chose
    (warning,) = [w for w in warnings_seen if "replaced the client" in w.getMessage()]
    assert "10.0.0.0/8" in warning.getMessage()


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_middleware_is_silent_for_a_direct_client(
    runner: str, warnings_seen: list[logging.LogRecord]
) -> None:
    outcome = RUNNERS[runner]([("X-Forwarded-For", "198.51.100.7")], client="198.51.100.7")
    assert outcome.record["ip_address"] == "198.51.100.7"
    assert not warnings_seen
