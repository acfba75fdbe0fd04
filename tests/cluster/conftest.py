"""Fixtures for the tests against the 3-node RabbitMQ cluster.

The cluster is started here (``devstack/rabbitmq.sh cluster-start 3``, idempotent) and, when
these tests started it, stopped after them, so the rest of the suite does not carry three more
Erlang nodes. A cluster that cannot start fails the tests; nothing here skips.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator

import pytest

from audit_logging.settings import Settings
from tests._stack import delete_super_stream
from tests.cluster import _cluster
from tests.cluster._cluster import NODES, Node


@pytest.fixture(scope="package")
def _cluster_up() -> Iterator[None]:
    was_running = _cluster.running()
    began = time.monotonic()
    _cluster.start()
    print(f"\nRabbitMQ cluster of {_cluster.SIZE} up in {time.monotonic() - began:.1f} s")
    yield
    if was_running:
        # Someone else's cluster (make services CLUSTER=3): leave it running, all nodes up.
        _cluster.start()
    else:
        _cluster.stop()


@pytest.fixture
def cluster(_cluster_up: None) -> Iterator[tuple[Node, ...]]:
    """The cluster's nodes, all running; a node a test stopped is started again afterwards."""
    yield NODES
    _cluster.start()


@pytest.fixture
def cluster_settings(settings: Settings, cluster: tuple[Node, ...]) -> Iterator[Settings]:
    """This test's own stream, index prefix and S3 prefix, on the cluster: clients are given
    node 1's stream port and find the other nodes from what the cluster advertises."""
    on_cluster = dataclasses.replace(settings, rabbitmq_stream_port=cluster[0].stream_port)
    yield on_cluster
    _cluster.start()  # node 1 must answer to delete the stream
    asyncio.run(delete_super_stream(on_cluster))
