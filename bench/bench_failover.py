"""Failover benchmark: how long a consumer group archives nothing when its active consumer dies.

Two ``python -m audit_logging.consumer`` processes share a ``--consumer-name`` (a RabbitMQ
single-active-consumer group) while records are published at a steady pace. The active one
is SIGKILLed; the figure is the time from the kill to the first batch with records archived
by its successor (its log line's timestamp). A fresh standby is then started and the cycle
repeats. At the end the S3 archive must hold every published record exactly once.

There is no baseline for a takeover: the goal (≤ 5 s) is absolute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import random
import re
import signal
import threading
import time
from collections import Counter
from typing import Final

from rstream import AMQPMessage, ConfirmationStatus, Producer, Properties

from audit_logging.record import format_timestamp, new_log_id, record_to_json
from audit_logging.settings import Settings
from bench._results import Result, median
from bench._stack import LOCAL_ENV, ConsumerProcess, archived_log_ids, log_time
from bench.bench_consumer import NAME, _publish, realistic_records, scratch

KILLS: Final = 5
RATE: Final = 200  # records/s, in bursts every 50 ms
GOAL_SECONDS: Final = 5.0
ARGS: Final = ("--flush-interval", "1")
ACTIVE: Final = "is the active consumer"
STANDBY: Final = "is a standby"
_BATCH = re.compile(r" batch \d+: \d+ messages \(offsets \d+-\d+\): (\d+) records archived")


class _Publisher(threading.Thread):
    """A live application: publishes at ``RATE`` until told to stop, and keeps the log_ids."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.log_ids: list[str] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    async def _run(self) -> None:
        rng = random.Random(11)
        pool = realistic_records(2000, 13)
        step = RATE // 20
        confirmed = 0
        failed = 0

        def on_confirm(status: ConfirmationStatus) -> None:
            nonlocal confirmed, failed
            confirmed += 1
            failed += not status.is_confirmed

        async with Producer(**self.settings.stream_client_args()) as producer:
            began = time.monotonic()
            tick = 0
            while not self.stopping.is_set():
                messages = []
                for _ in range(step):
                    record = dict(pool[rng.randrange(len(pool))])
                    record["log_id"] = new_log_id()
                    record["timestamp"] = format_timestamp(dt.datetime.now(dt.UTC))
                    self.log_ids.append(record["log_id"])
                    messages.append(
                        AMQPMessage(
                            body=record_to_json(record),
                            properties=Properties(content_type="application/json"),
                        )
                    )
                await producer.send_batch(
                    self.settings.rabbitmq_stream_name, messages, on_publish_confirm=on_confirm
                )
                tick += 1
                await asyncio.sleep(max(0.0, began + tick * 0.05 - time.monotonic()))
            deadline = time.monotonic() + 30
            while confirmed < len(self.log_ids) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if confirmed < len(self.log_ids) or failed:
            raise RuntimeError(
                f"{len(self.log_ids)} published, {confirmed} confirmed, {failed} refused"
            )

    def finish(self) -> list[str]:
        self.stopping.set()
        self.join(60)
        if self.is_alive():
            raise RuntimeError("the paced publisher did not finish")
        if self.error is not None:
            raise self.error
        return self.log_ids


def _wait_for(consumer: ConsumerProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in consumer.log():
        if not consumer.running() or time.monotonic() > deadline:
            raise RuntimeError(f"no {text!r} within {timeout} s:\n{consumer.log()[-3000:]}")
        time.sleep(0.05)


def _first_batch_after(consumer: ConsumerProcess, since: float) -> float | None:
    """Wall-clock time of the first batch line with records archived, logged after ``since``."""
    for line in consumer.log().splitlines():
        match = _BATCH.search(line)
        if match and int(match.group(1)) > 0:
            logged = log_time(line)
            # Log times are in whole milliseconds: allow the kill's own millisecond.
            if logged >= since - 0.001:
                return logged
    return None


def _kill(consumer: ConsumerProcess) -> float:
    """SIGKILL this one process; returns the wall-clock time of the kill."""
    killed_at = time.time()
    consumer.proc.send_signal(signal.SIGKILL)
    consumer.proc.wait(10)
    return killed_at


def failover(settings: Settings) -> list[Result]:
    asyncio.run(_publish(settings, []))  # creates the stream
    publisher = _Publisher(settings)
    started: list[ConsumerProcess] = []
    takeovers: list[float] = []
    try:
        publisher.start()
        active = ConsumerProcess(settings, *ARGS, name=NAME)
        started.append(active)
        _wait_for(active, ACTIVE, 30)
        standby = ConsumerProcess(settings, *ARGS, name=NAME)
        started.append(standby)
        for _ in range(KILLS):
            _wait_for(standby, STANDBY, 30)
            # Kill in steady state: the active one has been archiving for a while.
            time.sleep(2 + random.random())
            killed_at = _kill(active)
            deadline = time.monotonic() + 30
            while (archived := _first_batch_after(standby, killed_at)) is None:
                if not standby.running() or time.monotonic() > deadline:
                    raise RuntimeError(f"no takeover within 30 s:\n{standby.log()[-3000:]}")
                time.sleep(0.05)
            takeovers.append(archived - killed_at)
            print(f"bench failover: takeover {takeovers[-1]:.2f} s", flush=True)
            active, standby = standby, ConsumerProcess(settings, *ARGS, name=NAME)
            started.append(standby)
        published = publisher.finish()
        expected = set(published)
        deadline = time.monotonic() + 60
        while len(set(rows := archived_log_ids(settings))) < len(expected):
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        publisher.stopping.set()
        for consumer in started:
            if consumer.running():
                consumer.stop()
    repeated = sum(n - 1 for n in Counter(rows).values() if n > 1)
    missing = len(expected - set(rows))
    exact = not repeated and not missing and set(rows) == expected
    p50, worst = median(takeovers), max(takeovers)
    rounds = "/".join(f"{t:.2f}" for t in takeovers)
    noise = "2 cores shared with OpenSearch, RabbitMQ, moto (and any CI run on the machine)"
    return [
        Result(
            "failover",
            f"takeover p50 over {KILLS} SIGKILLs of the active consumer",
            p50,
            None,
            "s",
            f"<= {GOAL_SECONDS:g} s",
            p50 <= GOAL_SECONDS,
            f"from SIGKILL to the successor's first batch with records archived (its log "
            f"line); --flush-interval 1; {RATE} records/s published throughout; "
            f"takeovers {rounds}",
        ),
        Result(
            "failover",
            f"takeover max over {KILLS} SIGKILLs of the active consumer",
            worst,
            None,
            "s",
            f"<= {GOAL_SECONDS:g} s",
            worst <= GOAL_SECONDS,
            noise,
        ),
        Result(
            "failover",
            "S3 rows against records published, after the kills",
            len(rows),
            len(published),
            "rows",
            "= 1x, no duplicates",
            exact,
            f"{len(set(rows)):,} unique log_ids; {repeated} duplicate rows, {missing} missing; "
            f"{len(started)} consumers started",
        ),
    ]


def run(settings: Settings) -> list[Result]:
    with scratch(settings, "failover") as own:
        return failover(own)


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(json.dumps(dataclasses.asdict(result)))
