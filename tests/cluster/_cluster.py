"""The local RabbitMQ cluster of ``devstack/rabbitmq.sh cluster-start`` for the cluster tests:
start and stop it, find which node leads a stream, stop that node and bring it back.

Node ``i`` (1-based) is ``audit{i}@localhost`` with its stream port at 5552 + 10 * i, as the
script lays them out (both can be moved by the script's environment variables, read here too).
Each node advertises ``localhost`` and its own stream port, so a client given one node's port
reaches the leader of each stream on that leader's port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit_logging.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "devstack" / "rabbitmq.sh"
SIZE = 3
_PREFIX = os.environ.get("RABBITMQ_DEVSTACK_CLUSTER_PREFIX", "audit")
_STREAM_BASE = int(os.environ.get("RABBITMQ_DEVSTACK_CLUSTER_STREAM_BASE", "5552"))
# A fresh clone makes the Debian root first (debootstrap, ~40 s on a good mirror); a node's
# own start waits up to the script's RABBITMQ_DEVSTACK_START_TIMEOUT (120 s) per node.
START_TIMEOUT = 900.0
CTL_TIMEOUT = 120.0


@dataclass(frozen=True)
class Node:
    index: int

    @property
    def name(self) -> str:
        return f"{_PREFIX}{self.index}@localhost"

    @property
    def stream_port(self) -> int:
        return _STREAM_BASE + 10 * self.index

    @property
    def pid_file(self) -> str:
        """The node's pid file as the script writes it, seen from inside the Debian root."""
        return f"/devstack/nodes/{self.name.partition('@')[0]}/rabbitmq.pid"

    def __str__(self) -> str:
        return self.name


NODES = tuple(Node(i) for i in range(1, SIZE + 1))


@dataclass(frozen=True)
class Placement:
    """Where a stream lives: its leader's node name ('' while none is elected) and members."""

    leader: str
    members: tuple[str, ...]


def node_named(name: str) -> Node:
    for node in NODES:
        if node.name == name:
            return node
    raise AssertionError(f"{name!r} is not a node of the cluster ({', '.join(map(str, NODES))})")


def script(*args: str, timeout: float, node: Node | None = None) -> str:
    """Run ``devstack/rabbitmq.sh *args`` (``ctl`` against ``node``); its stdout, or a failed
    test with everything it printed when it fails or hangs."""
    env = dict(os.environ)
    if node is not None:
        # `rabbitmq.sh ctl` talks to the node named by this variable, with that node's folders.
        env["RABBITMQ_DEVSTACK_NODENAME"] = node.name
    command = ["bash", str(SCRIPT), *args]
    # Its own session, so a hang is ended with everything it started (the nodes themselves
    # run in sessions of their own, made by the script, and outlive this).
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(command[1:])} did not finish within {timeout:.0f} s:\n{out}{err}"
        ) from None
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(command[1:])} exited {proc.returncode}:\n{out}{err}")
    return out


def ctl(node: Node, *args: str, timeout: float = CTL_TIMEOUT) -> str:
    """``rabbitmqctl -q -n <node> *args`` inside the Debian root."""
    return script("ctl", "-q", *args, timeout=timeout, node=node)


def running() -> bool:
    """Whether every node of the cluster answers (``cluster-status``)."""
    proc = subprocess.run(
        ["bash", str(SCRIPT), "cluster-status"], capture_output=True, timeout=CTL_TIMEOUT,
        check=False, start_new_session=True,
    )
    return proc.returncode == 0


def start() -> str:
    """Start the nodes that are not running (idempotent: running ones are left alone, a node
    stopped by :func:`stop_node` comes back with its data and rejoins)."""
    return script("cluster-start", str(SIZE), timeout=START_TIMEOUT)


def stop() -> str:
    return script("cluster-stop", timeout=START_TIMEOUT)


def stop_node(node: Node) -> None:
    """Stop ``node`` as an operator would (``rabbitmqctl stop``): the Erlang node exits, its
    connections close and the others see it leave. Returns once its process has exited."""
    ctl(node, "stop", node.pid_file)


def placements(via: Node) -> dict[str, Placement]:
    """Every stream of the cluster, asked through ``via`` (a node that is up)."""
    rows = json.loads(ctl(via, "list_queues", "name", "type", "leader", "members",
                          "--formatter", "json") or "[]")
    return {
        str(row["name"]): Placement(str(row.get("leader") or ""), tuple(row.get("members") or ()))
        for row in rows
        if row.get("type") == "stream"
    }


def placement(stream: str, via: Node) -> Placement:
    found = placements(via)
    assert stream in found, f"stream {stream!r} is not on the cluster: {sorted(found)}"
    return found[stream]


def wait_for_placement(
    streams: Sequence[str],
    via: Node,
    done: Callable[[dict[str, Placement]], bool],
    what: str,
    timeout: float,
) -> dict[str, Placement]:
    """Poll :func:`placements` until ``done(placements of streams)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        found = placements(via)
        current = {name: found[name] for name in streams if name in found}
        if len(current) == len(streams) and done(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {current}")
        time.sleep(0.5)


def group_consumers(stream: str, group: str, via: Node) -> str:
    """The broker's single-active-consumer view of ``group`` on ``stream``: each member's
    connection and whether it is active (for failure messages; there is no rabbitmqctl
    command for it, rabbitmq-streams list_stream_group_consumers calls the same function)."""
    erlang = (
        f'rabbit_stream_sac_coordinator:group_consumers(<<"/">>, <<"{stream}">>, '
        f'<<"{group}">>, [connection_name, state]).'
    )
    return " ".join(ctl(via, "eval", erlang).split())


async def _leader_port(settings: Settings, stream: str) -> int:
    from rstream import Producer

    producer = Producer(**settings.stream_client_args())
    try:
        await producer.start()
        client = await producer.default_client
        leader, _ = await client.query_leader_and_replicas(stream)
        return int(leader.port)
    finally:
        await producer.close()


def advertised_leader(settings: Settings, stream: str) -> Node:
    """The node a client is sent to for publishing on ``stream``: the leader as the stream
    protocol's metadata gives it (advertised host and port), asked through ``settings``' node."""
    port = asyncio.run(_leader_port(settings, stream))
    for node in NODES:
        if node.stream_port == port:
            return node
    raise AssertionError(f"the leader of {stream!r} is advertised on port {port}, no node's")
