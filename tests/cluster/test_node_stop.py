"""On the 3-node cluster: the node that leads a partition of the super stream is stopped while
records are logged and consumed, then started again; nothing is lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from rstream import RouteType, SuperStreamProducer

from audit_logging.partitions import partition_names
from audit_logging.settings import Settings
from tests.cluster import _cluster
from tests.cluster._cluster import Node, Placement

pytestmark = [pytest.mark.services, pytest.mark.slow]
PARTITIONS = 3


async def _no_key(_: object) -> str:
    return ""


def create_super_stream(settings: Settings) -> None:
    async def create() -> None:
        # create_super_stream closes its locator connection: this client only creates.
        creator = SuperStreamProducer(
            **settings.stream_client_args(), super_stream=settings.rabbitmq_stream_name,
            routing=RouteType.Hash, routing_extractor=_no_key,
        )
        try:
            await creator.create_super_stream(
                settings.rabbitmq_stream_name, n_partitions=PARTITIONS,
                arguments={"initial-cluster-size": str(len(_cluster.NODES))},
            )
        finally:
            await creator.close()

    asyncio.run(create())


def replicated_everywhere(placements: dict[str, Placement]) -> bool:
    names = {node.name for node in _cluster.NODES}
    return all(p.leader in names and set(p.members) == names for p in placements.values())


def test_a_partitions_leader_moves_when_its_node_stops_and_comes_back_with_it(
    cluster_settings: Settings, cluster: tuple[Node, ...]
) -> None:
    # The harness itself, without the library: if this fails, the broker's failover (or the
    # cluster's set-up) is broken, not the pipeline.
    create_super_stream(cluster_settings)
    streams = partition_names(cluster_settings.rabbitmq_stream_name, PARTITIONS)
    placed = _cluster.wait_for_placement(
        streams, cluster[0], replicated_everywhere, "partitions with a leader and 3 members", 30
    )
    for stream, p in placed.items():
        assert _cluster.advertised_leader(cluster_settings, stream).name == p.leader

    stream = streams[0]
    victim = _cluster.node_named(placed[stream].leader)
    observer = next(node for node in cluster if node != victim)
    asked_there = dataclasses.replace(cluster_settings, rabbitmq_stream_port=observer.stream_port)
    _cluster.stop_node(victim)
    assert not _cluster.running()
    moved = _cluster.wait_for_placement(
        [stream], observer, lambda now: now[stream].leader not in ("", victim.name),
        f"a new leader of {stream} after {victim} stopped", 60,
    )
    assert _cluster.advertised_leader(asked_there, stream).name == moved[stream].leader

    _cluster.start()
    assert _cluster.running()
    # The node is a member again and answers for the partition.
    back = _cluster.placement(stream, victim)
    assert set(back.members) == {node.name for node in cluster}, back

