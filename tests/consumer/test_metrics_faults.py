"""Each fault of the reliability tests, seen from outside through --metrics-port: the
matching metric and /readyz move within 10 s of the fault, and back once it is over.

Everything is scraped over HTTP, as Prometheus and a readiness probe would. The shared
services are never stopped: OpenSearch and S3 are cut behind a TCP proxy, the broker by a
proxy in front of its first (locator) connection plus cutting the process's own connection
to the stream (rstream opens that one at the address the broker advertises), so that every
reconnection fails until the proxy is up again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from audit_logging.settings import Settings
from tests._ports import cut_own_connections, free_port
from tests._proxy import tcp_proxy
from tests.consumer._helpers import (
    PacedPublisher,
    bodies_of,
    create_stream,
    make_records,
    publish,
    wait_until,
)
from tests.consumer._scrape import readyz, sample
from tests.consumer._sinks import opensearch_count
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services, pytest.mark.slow]
PREFIX = "audit_logging_consumer_"
SHOWS_WITHIN = 10.0  # the bound for a fault, and a recovery, to show
# A lost broker is retried with a backoff of up to 10 s, then the connection is made anew.
BROKER_BACK_WITHIN = 30.0
ARGS = ("--batch-size", "100", "--flush-interval", "1")


def up(port: int, dependency: str) -> float | None:
    return sample(port, PREFIX + "dependency_up", dependency=dependency)


def retries(port: int, sink: str) -> float:
    return sample(port, PREFIX + "retries_total", sink=sink) or 0.0


def wait_ready(port: int, timeout: float = 30) -> dict[str, Any]:
    return wait_until("/readyz 200", lambda: readyz(port), lambda a: a[0] == 200, timeout)[1]


def wait_shows(what: str, probe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    return wait_until(what, probe, done, SHOWS_WITHIN)


def sink_target(settings: Settings, sink: str) -> tuple[str, int]:
    if sink == "opensearch":
        return settings.opensearch_host, settings.opensearch_port
    endpoint = settings.require("aws_endpoint_url_s3").split("://", 1)[1]
    host, _, port = endpoint.partition(":")
    return host, int(port or 80)


@pytest.mark.parametrize("sink", ["opensearch", "s3"])
def test_a_cut_sink_shows_as_down_and_not_ready_and_comes_back(
    sink: str, settings: Settings, start_consumer: StartConsumer
) -> None:
    create_stream(settings)
    port = free_port()
    with tcp_proxy(*sink_target(settings, sink)) as proxy:
        if sink == "opensearch":
            through = dataclasses.replace(
                settings, opensearch_host="127.0.0.1", opensearch_port=proxy.port
            )
        else:
            through = dataclasses.replace(settings, aws_endpoint_url_s3=proxy.url)
        consumer = start_consumer(*ARGS, "--metrics-port", str(port), sinks=through)
        wait_ready(port)
        assert up(port, sink) == 1

        proxy.down()
        # Idle: the probe alone notices.
        _, document = wait_shows("/readyz 503", lambda: readyz(port), lambda a: a[0] == 503)
        assert document["dependencies"][sink] is False
        assert document["dependencies"]["broker"] is True
        assert any(problem.startswith(f"{sink}: ") for problem in document["problems"])
        wait_shows(f"{sink} down", lambda: up(port, sink), lambda value: value == 0)
        # Busy: the consumer's own calls fail and are retried, and counted.
        before = retries(port, sink)
        records = make_records(150)
        publish(settings, bodies_of(records))
        wait_shows(f"{sink} retries", lambda: retries(port, sink), lambda n: n > before)

        proxy.up()
        wait_shows(f"{sink} up", lambda: up(port, sink), lambda value: value == 1)
        wait_shows("/readyz 200", lambda: readyz(port)[0], lambda code: code == 200)
        wait_until(
            "150 records indexed", lambda: opensearch_count(settings), lambda n: n == 150, 60
        )
        assert consumer.stop() == 0, consumer.log()


def test_a_lost_broker_shows_as_down_inactive_and_not_ready_and_comes_back(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    create_stream(settings)
    stream = settings.rabbitmq_stream_name
    port = free_port()
    with tcp_proxy("127.0.0.1", settings.rabbitmq_stream_port) as proxy:
        consumer = start_consumer(
            *ARGS,
            "--metrics-port",
            str(port),
            env={"RABBITMQ_STREAM_HOST": "127.0.0.1", "RABBITMQ_STREAM_PORT": str(proxy.port)},
        )
        assert wait_ready(port)["partitions"] == {stream: "active"}

        proxy.down()
        cut_own_connections(settings.rabbitmq_stream_port, consumer.pid)
        _, document = wait_shows("/readyz 503", lambda: readyz(port), lambda a: a[0] == 503)
        assert document["dependencies"]["broker"] is False
        assert document["partitions"] == {stream: "standby"}
        assert f"broker: not subscribed to {stream}" in document["problems"]
        wait_shows("broker down", lambda: up(port, "broker"), lambda value: value == 0)
        assert sample(port, PREFIX + "active", stream=stream) == 0
        wait_shows("broker retries", lambda: retries(port, "broker"), lambda n: n > 0)

        proxy.up()
        wait_until(
            "broker up", lambda: up(port, "broker"), lambda value: value == 1, BROKER_BACK_WITHIN
        )
        assert wait_ready(port, SHOWS_WITHIN)["partitions"] == {stream: "active"}
        assert sample(port, PREFIX + "active", stream=stream) == 1
        publish(settings, bodies_of(make_records(50)))
        wait_until("50 records indexed", lambda: opensearch_count(settings), lambda n: n == 50, 60)
        assert consumer.stop() == 0, consumer.log()
    assert "RabbitMQ connection lost; reconnecting" in consumer.log()


def test_a_poison_message_is_counted_by_reason_and_readiness_holds(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    stream = settings.rabbitmq_stream_name
    port = free_port()
    publish(settings, bodies_of(make_records(10)))
    consumer = start_consumer(*ARGS, "--metrics-port", str(port))
    wait_ready(port)
    dead = PREFIX + "records_dead_lettered_total"

    publish(settings, [b"this is not json", *bodies_of(make_records(5))])
    wait_shows(
        "a dead letter counted as not_json",
        lambda: sample(port, dead, stream=stream, reason="not_json"),
        lambda count: count == 1,
    )
    status, document = readyz(port)
    assert (status, document["status"], document["problems"]) == (200, "ready", [])
    wait_shows(
        "15 records archived",
        lambda: sample(port, PREFIX + "records_archived_total", stream=stream),
        lambda count: count == 15,
    )
    assert consumer.stop() == 0, consumer.log()


def test_a_killed_consumer_s_standby_turns_active_and_stays_ready(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    stream = settings.rabbitmq_stream_name
    records = make_records(3000)
    create_stream(settings)
    publisher = PacedPublisher(settings, bodies_of(records), per_second=300)
    publisher.start()
    args = (*ARGS, "--consumer-name", "watched")
    first_port, second_port = free_port(), free_port()
    first = start_consumer(*args, "--metrics-port", str(first_port))
    assert wait_ready(first_port)["partitions"] == {stream: "active"}
    second = start_consumer(*args, "--metrics-port", str(second_port), workdir="standby")
    document = wait_ready(second_port)
    assert document["partitions"] == {stream: "standby"}
    assert sample(second_port, PREFIX + "active", stream=stream) == 0
    assert sample(first_port, PREFIX + "active", stream=stream) == 1
    # The standby reports no lag: the active member does.
    assert sample(second_port, PREFIX + "lag_messages", stream=stream) is None
    wait_until(
        "a batch archived by the active member",
        lambda: sample(first_port, PREFIX + "records_archived_total", stream=stream),
        lambda count: count is not None and count >= 100,
        30,
    )

    first.kill()
    statuses: list[int] = []

    def standby_state() -> tuple[float | None, int]:
        status, _ = readyz(second_port)
        statuses.append(status)
        return sample(second_port, PREFIX + "active", stream=stream), status

    wait_shows("the standby to turn active", standby_state, lambda state: state[0] == 1)
    assert set(statuses) == {200}, statuses
    assert readyz(second_port)[1]["partitions"] == {stream: "active"}
    publisher.join_checked(60)
    wait_until("3,000 records indexed", lambda: opensearch_count(settings), lambda n: n == 3000, 60)
    wait_until(
        "the new active member's lag to reach 0",
        lambda: sample(second_port, PREFIX + "lag_messages", stream=stream),
        lambda lag: lag == 0,
        60,
    )
    assert second.stop() == 0, second.log()
