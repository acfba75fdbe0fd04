"""A Prometheus server of the tests' own, shared by the tests of deploy/ that need one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy._prometheus_server import Server, prometheus_server


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prometheus_server(tmp_path_factory.mktemp("prometheus")) as server:
        yield server
