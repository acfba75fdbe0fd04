"""Every scope in ``server_rewrites/`` through both the ASGI and the WSGI middleware: the
request succeeds, the record holds the address the file expects, and the warning that the
server rewrote the client comes exactly once when the file says so (never otherwise), as
one line of bounded length."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit_logging.middleware._server_rewrite import notice_rewritten_client
from tests.hostile.test_middleware import header_value
from tests.middleware._drive import RUNNERS

FILES = sorted((Path(__file__).parent / "server_rewrites").glob("*.json"))


@pytest.fixture
def warnings_seen() -> Iterator[list[str]]:
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record.getMessage())

    keep = Keep()
    logging.getLogger("audit_logging").addHandler(keep)
    notice_rewritten_client.reset()
    try:
        yield seen
    finally:
        logging.getLogger("audit_logging").removeHandler(keep)
        notice_rewritten_client.reset()


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 10
    assert any(json.loads(p.read_text())["warns"] for p in FILES)
    assert not all(json.loads(p.read_text())["warns"] for p in FILES)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_server_rewrites(path: Path, runner: str, warnings_seen: list[str]) -> None:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("why"), f"{path.name}: say why this file is here"
    headers = [(name, header_value(value)) for name, value in case["headers"]]

    for _ in range(2):  # a second request never warns again
        outcome = RUNNERS[runner](headers, client=case["client"], port=case["port"],
                                  trusted_proxies=case.get("trusted_proxies", []))
        assert outcome.status == 200
        assert outcome.record["ip_address"] == case["expect_ip"]

    rewrites = [text for text in warnings_seen if "replaced the client" in text]
    assert len(rewrites) == (1 if case["warns"] else 0), warnings_seen
    for text in rewrites:
        assert "\n" not in text and "\r" not in text, text
        assert len(text) < 800, text
