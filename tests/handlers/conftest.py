"""Fixtures for the handler tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A broker that takes TCP connections and never answers (as one SIGSTOPped does):
    the kernel completes the handshakes of a listening socket nobody accepts from."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])
