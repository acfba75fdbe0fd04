"""On the 3-node cluster: the node that leads a partition of the super stream is stopped while
records are logged and consumed, then started again; nothing is lost, nothing duplicated.

The node stopped is either another node than the one the clients were given (a leader moves
under running clients), or that node itself: their only way into the cluster, so the publisher
spools and the consumers wait until it is back."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Final

import pyarrow.parquet as pq
import pytest
from rstream import Producer, RouteType, SuperStreamProducer

from audit_logging.handlers import AuditHandler
from audit_logging.partitions import ensure_layout, partition_index, partition_names
from audit_logging.record import new_log_id
from audit_logging.settings import Settings
from audit_logging.stream_arguments import wanted_arguments
from tests._stack import unique
from tests.cluster import _cluster
from tests.cluster._cluster import Node, Placement
from tests.consumer._helpers import ConsumerProcess, consumer_env, wait_until
from tests.consumer._sinks import archive_keys, opensearch_count, opensearch_ids, read_object

pytestmark = [pytest.mark.services, pytest.mark.slow]
PARTITIONS = 3
CONSUMERS = 3
RECORDS = 3000
PER_SECOND = 150  # 20 s of logging; the node is stopped a few seconds in
DOWN_FOR = 5.0  # seconds the node stays stopped while records keep coming
ARCHIVE_WAIT = 120.0  # hang guard: the consumers archive everything logged (a few s normally)
GROUP = "archive"
CONSUMER_ARGS = ("--batch-size", "200", "--flush-interval", "1", "--consumer-name", GROUP)


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


# -- the pipeline through a node stop ------------------------------------------------------


class PacedLogging(threading.Thread):
    """An application logging ``count`` audit records at ``per_second`` through the library's
    logging handler, each with a log_id chosen here so the test knows what was logged."""

    def __init__(self, handler: AuditHandler, count: int, per_second: int) -> None:
        super().__init__(daemon=True)
        self.logger = logging.getLogger(unique("audit.cluster"))
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(handler)
        self.count = count
        self.per_second = per_second
        self.log_ids: list[str] = []

    def run(self) -> None:
        began = time.monotonic()
        for i in range(self.count):
            log_id = new_log_id()
            self.logger.info(
                "Changed the status of order %d", i,
                extra={"log_id": log_id, "action": "UPDATE", "object_type": "Order",
                       "object_id": f"order_{i}", "user_id": f"user_{i % 13}"},
            )
            self.log_ids.append(log_id)
            ahead = began + (i + 1) / self.per_second - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def join_checked(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"logging did not finish in {timeout:.0f} s: emit blocked?"


def choose_nodes(
    settings: Settings, cluster: tuple[Node, ...], stopped: str
) -> tuple[Node, Node, str]:
    """(the node the clients are given, the node to stop, a partition it leads).

    The clients have one host and port in their settings: that node is their only way into
    the cluster. ``stopped="another node"`` stops a leader the clients reach through the node
    they were given, which stays up (a leader moving under running clients);
    ``stopped="the clients' node"`` stops the node they were given, itself a leader (no
    node to ask until it is back; the other leaders move meanwhile)."""
    streams = partition_names(settings.rabbitmq_stream_name, PARTITIONS)
    placed = _cluster.wait_for_placement(
        streams, cluster[0], replicated_everywhere, "partitions with a leader and 3 members", 30
    )
    if stopped == "the clients' node":
        leader = _cluster.node_named(placed[streams[0]].leader)
        return leader, leader, streams[0]
    # RabbitMQ places the leaders "balanced", which on a fresh stream may still put them all
    # on one node: then the clients are given another one.
    for stream in streams:
        if placed[stream].leader != cluster[0].name:
            return cluster[0], _cluster.node_named(placed[stream].leader), stream
    return cluster[1], cluster[0], streams[0]


def create_layout(settings: Settings) -> None:
    """The super stream, made by the library's own code as its publisher would make it."""

    async def create() -> None:
        producer = Producer(**settings.stream_client_args())
        try:
            await producer.start()
            await ensure_layout(
                producer, settings.rabbitmq_stream_name, PARTITIONS, wanted_arguments(settings),
                logging.getLogger("audit_logging.publisher"),
            )
        finally:
            await producer.close()

    asyncio.run(create())


def archived_by_partition(settings: Settings) -> dict[str, list[str]]:
    """The log_ids of each partition's archive objects in S3 (a log_id twice if it is there
    twice), by the partition stream named in the object's key."""
    found: dict[str, list[str]] = {}
    for key in archive_keys(settings):
        partition = key.rsplit("/", 1)[1].rsplit("-", 2)[0]
        table = pq.read_table(io.BytesIO(read_object(settings, key)), columns=["log_id"])
        found.setdefault(partition, []).extend(map(str, table.column("log_id").to_pylist()))
    return found


def progress(archived: dict[str, list[str]], logged: dict[str, set[str]]) -> dict[str, str]:
    """'archived/logged' log_ids of each partition, for a message that says which one stalls."""
    return {p: f"{len(set(archived.get(p, ())) & ids)}/{len(ids)}" for p, ids in logged.items()}


def broker_view(streams: list[str], via: Node) -> str:
    """Each partition's leader and consumer group as the broker sees them, for a failure."""
    try:
        found = _cluster.placements(via)
        lines = [
            f"{s}: leader {found[s].leader if s in found else '?'}; group "
            + _cluster.group_consumers(s, GROUP, via)
            for s in streams
        ]
    except AssertionError as exc:
        return f"the broker's view is unknown: {exc}"
    return "\n".join(lines)


# A member's state: ``{state,inactive}``/``{state,active}`` up to 4.0,
# ``{state,"waiting (connected)"}``/``{state,"active (connected)"}`` (and other connection
# conditions in brackets) on 4.3.
_MEMBER_STATE = re.compile(r'\{state,(?:<<)?"?([a-z]+)')


def leaderless_group(line: str) -> bool:
    """Whether a broker_view line shows a group with members of which none is active."""
    states = _MEMBER_STATE.findall(line)
    return bool(states) and "active" not in states


def test_a_group_without_an_active_member_is_recognised_in_both_brokers_formats() -> None:
    old = '{ok,[[{connection_name,<<"a">>},{state,inactive}],' \
          '[{connection_name,<<"b">>},{state,%s}]]}'
    new = '{ok,[[{connection_name,<<"a">>},{state,"waiting (connected)"}],' \
          '[{connection_name,<<"b">>},{state,"%s (connected)"}]]}'
    assert leaderless_group(old % "inactive") and not leaderless_group(old % "active")
    assert leaderless_group(new % "waiting") and not leaderless_group(new % "active")
    assert not leaderless_group("{error,not_found}")


def broker_version(via: Node) -> tuple[int, ...]:
    return tuple(int(part) for part in
                 _cluster.ctl(via, "eval", "rabbit_misc:version().").strip().strip('"').split("."))


# rabbitmq-server #13657: fixed after 4.0.5; the local stack runs 4.3 unless told otherwise.
LEADERLESS_GROUP_FIXED_IN: Final = (4, 1)


def logs_of(consumers: list[ConsumerProcess]) -> str:
    """What each consumer said, without its per-batch lines (active, standby, reconnects)."""
    parts = []
    for i, consumer in enumerate(consumers):
        lines = consumer.log().splitlines()
        events = [line for line in lines if " batch " not in line]
        parts.append(f"--- consumer {i} ({len(lines) - len(events)} batch lines left out):")
        parts.extend(events[-80:])
    return "\n".join(parts)


@pytest.mark.parametrize("stopped", ["another node", "the clients' node"])
def test_stopping_the_node_that_leads_a_partition_loses_and_duplicates_nothing(
    stack_env: dict[str, str], cluster_settings: Settings, cluster: tuple[Node, ...],
    tmp_path: Path, stopped: str,
) -> None:
    partitioned = dataclasses.replace(cluster_settings, stream_partitions=PARTITIONS)
    create_layout(partitioned)
    given, victim, led = choose_nodes(partitioned, cluster, stopped)
    settings = dataclasses.replace(partitioned, rabbitmq_stream_port=given.stream_port)
    print(f"\nclients given {given}; stopping {victim}, leader of {led}")
    env = consumer_env(
        stack_env, settings, RABBITMQ_STREAM_PORT=str(given.stream_port),
        AUDIT_LOG_STREAM_PARTITIONS=str(PARTITIONS),
    )
    consumers = [
        ConsumerProcess(env, CONSUMER_ARGS, tmp_path / f"consumer-{i}") for i in range(CONSUMERS)
    ]
    streams = partition_names(settings.rabbitmq_stream_name, PARTITIONS)
    handler = AuditHandler(settings=settings)
    try:
        for consumer in consumers:
            consumer.start()
        app = PacedLogging(handler, RECORDS, PER_SECOND)
        app.start()
        # The stop comes once every partition is being archived and a quarter of the records
        # are logged: the group has settled, and each active consumer is in the middle of
        # reading when the node goes.
        wait_until(
            "an archive object from every partition and a quarter of the records logged",
            lambda: (sorted(archived_by_partition(settings)), len(app.log_ids)),
            lambda now: (now[0] == streams and now[1] >= RECORDS // 4)
            or not all(c.running() for c in consumers),
            60,
        )
        assert all(c.running() for c in consumers), logs_of(consumers)

        stopped_at = time.monotonic()
        _cluster.stop_node(victim)
        logged_at_stop = len(app.log_ids)
        # Records keep coming while the node is away, then it comes back.
        time.sleep(DOWN_FOR)
        _cluster.start()
        down_for = time.monotonic() - stopped_at
        app.join_checked(RECORDS / PER_SECOND + 120)
        print(f"{victim} stopped after {logged_at_stop} records logged, back {down_for:.1f} s on")
        assert logged_at_stop < RECORDS, "the node was stopped after the logging had ended"
        # Everything the handler took is confirmed by the broker: what it could not send while
        # a leader was away was spooled and is resent.
        assert handler.flush(timeout=120) == 0, handler.stats()
        stats = handler.stats()
        assert stats["lost"] == 0, stats
        assert stats["published"] == RECORDS, f"{RECORDS} records logged, counted as {stats}"
        expected = set(app.log_ids)
        assert len(expected) == RECORDS
        logged: dict[str, set[str]] = {stream: set() for stream in streams}
        for log_id in expected:
            logged[streams[partition_index(log_id, PARTITIONS)]].add(log_id)

        wait_until(
            "every logged record in its partition's archive (archived/logged by partition)",
            lambda: progress(archived_by_partition(settings), logged),
            lambda now: all(a == b for a, b in (v.split("/") for v in now.values()))
            or not all(c.running() for c in consumers),
            ARCHIVE_WAIT,
        )
        # The consumers lived through the stop, and stop cleanly: nothing more can be written.
        assert all(c.running() for c in consumers), logs_of(consumers)
        for consumer in consumers:
            assert consumer.stop() == 0, logs_of(consumers)
    except AssertionError as exc:
        view = broker_view(streams, given)
        stuck = [line for line in view.splitlines() if leaderless_group(line)]
        if (stuck and "every logged record in its partition's archive" in str(exc)
                and broker_version(given) < LEADERLESS_GROUP_FIXED_IN):
            # A known defect of RabbitMQ 4.0 and older (rabbitmq-server #13657): when several
            # connections die at once a partition's group can be left with no active member,
            # so nobody reads it; the records are safe in the stream. Only this exact state,
            # on a broker that has the defect, is excused; anything lost or duplicated fails.
            pytest.xfail(f"RabbitMQ left a group with no active consumer: {stuck}")
        raise AssertionError(f"{exc}\n{view}\n{logs_of(consumers)}") from None
    finally:
        for consumer in consumers:
            consumer.kill()
        handler.close(timeout=10)

    archived = archived_by_partition(settings)
    for partition, rows in archived.items():
        # Each record is archived under its own partition's name.
        assert set(rows) <= logged[partition], f"{partition} holds records of other partitions"
    rows = [log_id for partition_rows in archived.values() for log_id in partition_rows]
    twice = {log_id: n for log_id, n in Counter(rows).items() if n > 1}
    assert not twice, f"S3 holds {len(rows)} rows for {len(set(rows))} log_ids: {twice}"
    assert set(rows) == expected, (
        f"S3: {len(expected - set(rows))} logged records missing, "
        f"{len(set(rows) - expected)} not logged"
    )
    ids = opensearch_ids(settings)
    assert opensearch_count(settings) == len(ids) == RECORDS, f"OpenSearch holds {len(ids)}"
    assert set(ids) == expected
