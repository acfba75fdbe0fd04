"""Capture benchmarks: what an audit ``logger.info(..., extra=...)`` costs the app, each figure
against a baseline measured in the same run:

* per call, p50 and p99, through ``AuditHandler`` (to the real local RabbitMQ) against the
  stdlib ``QueueHandler`` drained by a ``QueueListener`` (goal p50 ≤ 0.8x), and against a
  synchronous PostgreSQL INSERT per record, as django-auditlog does (goal ≤ 0.02x); beside
  them, for reading those, ``logger.info`` to a no-op handler (what logging itself costs)
  and the QueueHandler comparison again at an app's pace rather than back to back;
* p99 (and max) per call while the broker is down, against the healthy p99 measured the
  same way (goal ≤ 2x);
* publisher throughput with confirms, first emit to ``flush()`` returning 0, against a raw
  rstream ``send_batch`` loop of the same JSON bodies (goal ≥ 0.7x).

A run publishes to a stream of its own (deleted afterwards) and spools to a temporary folder.
The broker's app is stopped (``rabbitmqctl stop_app``) for a few seconds mid-run and always
started again. PostgreSQL is ``devstack/postgres.sh``'s, started here if it is not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import logging.handlers
import os
import queue
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql
from rstream import AMQPMessage, ConfirmationStatus, Producer, Properties

from audit_logging.handlers.handler import AuditHandler
from audit_logging.settings import Settings
from audit_logging.testing import CapturingTransport
from bench._results import Result, median, percentile
from bench._stack import DEVSTACK, POSTGRES_DSN, delete_stream, ensure_postgres

AREA: Final = "capture"
MESSAGE: Final = "Created customer"
WARMUP: Final = 2_000
CALLS: Final = 20_000  # per round, for the two queueing handlers
INSERT_CALLS: Final = 3_000  # per round: each one waits for a WAL flush, so fewer
ROUNDS: Final = 5
PACED_CALLS: Final = 5_000
PACED_SECONDS: Final = 2.0
PACED_ROUNDS: Final = 3
OUTAGE_RECORDS: Final = 20_000
OUTAGE_SECONDS: Final = 5.0
THROUGHPUT_RECORDS: Final = 50_000
THROUGHPUT_ROUNDS: Final = 3
RAW_BATCH: Final = 250  # what the publisher puts in one publish frame
DRAIN_TIMEOUT: Final = 120.0
BROKER_TIMEOUT: Final = 120.0


# The columns of a schema-v1 record; the insert baseline writes one row of them per event.
_TABLE_DDL: Final = """
CREATE TABLE {table} (
    log_id uuid PRIMARY KEY,
    timestamp timestamptz NOT NULL,
    user_id varchar(256),
    username varchar(256),
    action varchar(64) NOT NULL,
    object_type varchar(256),
    object_id varchar(256),
    object_repr varchar(1024),
    change_message text,
    changes jsonb,
    ip_address inet,
    user_agent varchar(1024),
    session_key varchar(256),
    request_id varchar(128),
    source varchar(128),
    extra jsonb,
    schema_version integer NOT NULL
)"""
# The lookups an audit screen makes; django-auditlog's LogEntry indexes the same kinds.
_INDEX_COLUMNS: Final = (("timestamp",), ("object_type", "object_id"), ("user_id",))
_COLUMNS: Final = (
    "log_id",
    "timestamp",
    "user_id",
    "username",
    "action",
    "object_type",
    "object_id",
    "change_message",
    "source",
    "schema_version",
)


# -- the handlers compared, and how a logger is set up around each ----------------------------


def _nothing() -> None:
    pass


def _none_spooled() -> int:
    return 0


@dataclasses.dataclass(frozen=True)
class _Setup:
    name: str
    logger: logging.Logger
    settle: Callable[[], None] = _nothing  # wait until its consumer has taken all logged so far
    spooled: Callable[[], int] = _none_spooled  # records that went through the local spool


class _Sink(logging.Handler):
    """Where the QueueListener delivers: a handler that takes its lock and keeps nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        pass


class _InsertHandler(logging.Handler):
    """One INSERT per record on the app's thread, committed before the call returns: what
    django-auditlog's ``LogEntry.objects.create()`` does under Django's autocommit."""

    def __init__(self, conn: psycopg.Connection[Any], table: str, source: str | None) -> None:
        super().__init__()
        self._conn = conn
        self._source = source
        self._query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
            sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)),
        )

    def emit(self, record: logging.LogRecord) -> None:
        values = record.__dict__
        row = (
            uuid.uuid4(),
            dt.datetime.fromtimestamp(record.created, dt.UTC),
            values.get("user_id"),
            values.get("username"),
            values.get("action"),
            values.get("object_type"),
            values.get("object_id"),
            record.getMessage(),
            self._source,
            1,
        )
        self._conn.execute(self._query, row)  # autocommit: the statement is its transaction


def _logger(tag: str, handler: logging.Handler) -> logging.Logger:
    """A logger of its own with ``handler`` as its only handler, so nothing else is timed."""
    logger = logging.getLogger(f"bench.capture.{tag}.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def _audit(settings: Settings, stack: contextlib.ExitStack) -> tuple[AuditHandler, _Setup]:
    handler = AuditHandler(settings=settings)
    stack.callback(handler.close, DRAIN_TIMEOUT)
    setup = _Setup(
        "audit",
        _logger("audit", handler),
        lambda: _drain(handler),
        lambda: handler.stats()["spooled"],
    )
    return handler, setup


def _drain(handler: AuditHandler) -> None:
    left = handler.flush(DRAIN_TIMEOUT)
    if left:
        raise RuntimeError(f"bench capture: {left} records unconfirmed after {DRAIN_TIMEOUT} s")


def _queue(stack: contextlib.ExitStack) -> _Setup:
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    listener = logging.handlers.QueueListener(records, _Sink())
    listener.start()
    stack.callback(listener.stop)
    return _Setup("queue", _logger("queue", logging.handlers.QueueHandler(records)), records.join)


def _insert(settings: Settings, stack: contextlib.ExitStack) -> _Setup:
    conn = psycopg.connect(POSTGRES_DSN, autocommit=True)
    stack.callback(conn.close)
    table = f"bench_capture_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL(_TABLE_DDL).format(table=sql.Identifier(table)))
    stack.callback(conn.execute, sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    for columns in _INDEX_COLUMNS:
        conn.execute(
            sql.SQL("CREATE INDEX ON {} ({})").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        )
    handler = _InsertHandler(conn, table, settings.source)
    return _Setup("insert", _logger("insert", handler))


def _floor() -> _Setup:
    """What ``logger.info`` costs before any handler work: the LogRecord, the level checks."""
    return _Setup("floor", _logger("floor", _Sink()))


# -- timing -----------------------------------------------------------------------------------


def _extras(count: int) -> list[dict[str, Any]]:
    # Built before timing: only the logging call itself is measured.
    return [
        {
            "action": "CREATE",
            "object_type": "Customer",
            "object_id": f"cus_{n}",
            "user_id": f"user_{n % 1000}",
            "username": f"user{n % 1000}@example.com",
        }
        for n in range(count)
    ]


def _nested_extras(count: int) -> list[dict[str, Any]]:
    """As :func:`_extras`, with what apps nest: changes, an extra object, a list of dicts
    (each copied by the handler at the call, so the app may change them afterwards)."""
    return [
        {
            **extra,
            "changes": {"email": [f"old{n}@example.com", f"new{n}@example.com"]},
            "extra": {"plan": "pro", "seats": n % 50, "tags": ["trial", "eu"]},
            "items": [{"sku": f"sku_{n % 97}", "qty": 1}],
        }
        for n, extra in enumerate(_extras(count))
    ]


def _timed(logger: logging.Logger, extras: Sequence[dict[str, Any]]) -> list[int]:
    """ns per call, the calls back to back."""
    # Each batch starts without garbage left by the one before, whichever handler made it.
    gc.collect()
    clock, info = time.perf_counter_ns, logger.info
    samples = []
    for extra in extras:
        began = clock()
        info(MESSAGE, extra=extra)
        samples.append(clock() - began)
    return samples


def _paced(logger: logging.Logger, extras: Sequence[dict[str, Any]], seconds: float) -> list[int]:
    """ns per call, the calls spread evenly over ``seconds`` (as an app's requests are)."""
    gc.collect()
    clock, info = time.perf_counter_ns, logger.info
    step = seconds * 1e9 / len(extras)
    start = clock()
    samples = []
    for n, extra in enumerate(extras):
        ahead = start + n * step - clock()
        if ahead > 0:
            time.sleep(ahead / 1e9)
        began = clock()
        info(MESSAGE, extra=extra)
        samples.append(clock() - began)
    return samples


def _us(ns: float) -> float:
    return ns / 1000


def _rounds(values: Sequence[float]) -> str:
    return "/".join(f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in values)


# -- 1. per call, against QueueHandler and a synchronous INSERT ------------------------------


@dataclasses.dataclass
class _Tally:
    """One handler's figures, a value per round."""

    p50: list[float] = dataclasses.field(default_factory=list)
    p99: list[float] = dataclasses.field(default_factory=list)
    spooled: list[int] = dataclasses.field(default_factory=list)
    drain: list[float] = dataclasses.field(default_factory=list)

    def add(self, samples: Sequence[int], spooled: int = 0, drain: float = 0.0) -> None:
        self.p50.append(_us(percentile(samples, 50)))
        self.p99.append(_us(percentile(samples, 99)))
        self.spooled.append(spooled)
        self.drain.append(drain)


def per_call(settings: Settings) -> list[Result]:
    extras = _extras(CALLS)
    with contextlib.ExitStack() as stack:
        audit = _audit(settings, stack)[1]
        queued = _queue(stack)
        setups = [audit, queued, _insert(settings, stack), _floor()]
        for setup in setups:
            _timed(setup.logger, extras[: WARMUP // 4 if setup.name == "insert" else WARMUP])
            setup.settle()
        burst = _back_to_back(setups, extras)
        nested = _back_to_back([audit, queued], _nested_extras(CALLS))
        paced = _paced_rounds([audit, queued], extras)
    return _per_call_results(burst) + _nested_results(nested) + _paced_results(paced)


def _back_to_back(setups: Sequence[_Setup], extras: Sequence[dict[str, Any]]) -> dict[str, _Tally]:
    tallies = {setup.name: _Tally() for setup in setups}
    for round_ in range(ROUNDS):
        # A different order each round, so no handler always runs first or after another.
        shift = round_ % len(setups)
        for setup in [*setups[shift:], *setups[:shift]]:
            count = INSERT_CALLS if setup.name == "insert" else CALLS
            spooled = setup.spooled()
            samples = _timed(setup.logger, extras[:count])
            began = time.perf_counter()
            setup.settle()
            drain = time.perf_counter() - began
            tallies[setup.name].add(samples, setup.spooled() - spooled, drain)
    return tallies


def _paced_rounds(setups: Sequence[_Setup], extras: Sequence[dict[str, Any]]) -> dict[str, _Tally]:
    """The same calls at an app's pace: the publisher is mostly asleep between them."""
    tallies = {setup.name: _Tally() for setup in setups}
    for round_ in range(PACED_ROUNDS):
        for setup in setups if round_ % 2 == 0 else setups[::-1]:
            samples = _paced(setup.logger, extras[:PACED_CALLS], PACED_SECONDS)
            setup.settle()
            tallies[setup.name].add(samples)
    return tallies


def _per_call_results(t: dict[str, _Tally]) -> list[Result]:
    audit, queued, insert, floor = t["audit"], t["queue"], t["insert"], t["floor"]
    a50, q50, i50, f50 = (median(x.p50) for x in (audit, queued, insert, floor))
    a99, q99, i99 = (median(x.p99) for x in (audit, queued, insert))
    how = f"median of {ROUNDS} rounds of {CALLS:,} back-to-back calls"
    spool = (
        f"ours spooled {_rounds(audit.spooled)} records a round and drained in "
        f"{_rounds(audit.drain)} s"
    )
    return [
        _ratio(
            "p50 per call vs stdlib QueueHandler",
            a50,
            q50,
            0.8,
            f"{how}; rounds ours {_rounds(audit.p50)}, base {_rounds(queued.p50)}",
        ),
        _ratio(
            "p99 per call vs stdlib QueueHandler",
            a99,
            q99,
            None,
            f"rounds ours {_rounds(audit.p99)}, base {_rounds(queued.p99)}; {spool}",
        ),
        _ratio(
            "p50 per call vs sync PostgreSQL INSERT",
            a50,
            i50,
            0.02,
            f"INSERT: {INSERT_CALLS:,} calls a round; rounds {_rounds(insert.p50)}",
        ),
        _ratio(
            "p99 per call vs sync PostgreSQL INSERT",
            a99,
            i99,
            None,
            f"INSERT rounds {_rounds(insert.p99)}",
        ),
        Result(
            AREA,
            "p50 per call, logger.info to a no-op handler (the stdlib floor)",
            f50,
            None,
            "µs",
            "-",
            None,
            f"rounds {_rounds(floor.p50)}; over it ours adds {a50 - f50:.3g} µs, "
            f"QueueHandler {q50 - f50:.3g} µs",
        ),
    ]


def _nested_results(t: dict[str, _Tally]) -> list[Result]:
    audit, queued = t["audit"], t["queue"]
    return [
        _ratio(
            "p50 per call with nested extra values vs stdlib QueueHandler",
            median(audit.p50),
            median(queued.p50),
            None,  # QueueHandler copies nothing; this row shows what the deep copy costs
            f"extra= with changes, an extra object and a list of dicts, deep-copied at the "
            f"call; rounds ours {_rounds(audit.p50)}, base {_rounds(queued.p50)}",
        ),
    ]


def _paced_results(t: dict[str, _Tally]) -> list[Result]:
    audit, queued = t["audit"], t["queue"]
    rate = f"{PACED_CALLS / PACED_SECONDS:,.0f} calls/s"
    how = f"median of {PACED_ROUNDS} rounds of {PACED_CALLS:,} calls over {PACED_SECONDS:g} s"
    return [
        _ratio(
            f"p50 per call at {rate} vs stdlib QueueHandler",
            median(audit.p50),
            median(queued.p50),
            None,
            f"{how}; rounds ours {_rounds(audit.p50)}, base {_rounds(queued.p50)}",
        ),
        _ratio(
            f"p99 per call at {rate} vs stdlib QueueHandler",
            median(audit.p99),
            median(queued.p99),
            None,
            f"rounds ours {_rounds(audit.p99)}, base {_rounds(queued.p99)}",
        ),
    ]


def _ratio(measure: str, ours: float, base: float, goal: float | None, note: str) -> Result:
    met = None if goal is None else ours <= goal * base
    words = "-" if goal is None else f"<= {goal:g}x"
    return Result(AREA, measure, ours, base, "µs", words, met, note)


# -- 2. per call while the broker is down ----------------------------------------------------


def outage(settings: Settings) -> list[Result]:
    extras = _extras(OUTAGE_RECORDS)
    with contextlib.ExitStack() as stack:
        handler, audit = _audit(settings, stack)
        _timed(audit.logger, extras[:WARMUP])
        audit.settle()
        healthy = _paced(audit.logger, extras, OUTAGE_SECONDS)
        audit.settle()
        try:
            _broker_ctl("stop_app")
            _wait_for_broker(settings, up=False)
            down = _paced(audit.logger, extras, OUTAGE_SECONDS)
            spooled = handler.stats()["spooled"]
        finally:
            _restart_broker(settings)
        recovered = time.perf_counter()
        audit.settle()
        recovery = time.perf_counter() - recovered
    how = f"{OUTAGE_RECORDS:,} calls over {OUTAGE_SECONDS:g} s each"
    healthy_p99, down_p99 = _us(percentile(healthy, 99)), _us(percentile(down, 99))
    return [
        Result(
            AREA,
            "p99 per call, broker down vs healthy",
            down_p99,
            healthy_p99,
            "µs",
            "<= 2x",
            down_p99 <= 2 * healthy_p99,
            f"{how}; {spooled:,} records spooled; all confirmed {recovery:.1f} s after "
            f"the broker was back; p50 down {_us(percentile(down, 50)):.3g} µs, "
            f"healthy {_us(percentile(healthy, 50)):.3g} µs",
        ),
        Result(
            AREA,
            "max per call, broker down vs healthy",
            _us(max(down)),
            _us(max(healthy)),
            "µs",
            "-",
            None,
            how,
        ),
    ]


def _broker_ctl(command: str) -> None:
    subprocess.run(
        ["bash", str(DEVSTACK / "rabbitmq.sh"), "ctl", command],
        check=True,
        capture_output=True,
        timeout=BROKER_TIMEOUT,
    )


def _restart_broker(settings: Settings) -> None:
    try:
        _broker_ctl("start_app")
    except subprocess.SubprocessError:
        # The script's start knows how to bring back a node whose app is stopped, and waits.
        subprocess.run(["bash", str(DEVSTACK / "rabbitmq.sh"), "start"], check=True)
    _wait_for_broker(settings, up=True)


def _wait_for_broker(settings: Settings, *, up: bool) -> None:
    address = (settings.rabbitmq_stream_host, settings.rabbitmq_stream_port)
    deadline = time.monotonic() + BROKER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=1.0).close()
            answers = True
        except OSError:
            answers = False
        if answers == up:
            return
        time.sleep(0.2)
    state = "accept" if up else "refuse"
    raise RuntimeError(f"bench capture: the stream port did not {state} connections in time")


# -- 3. publisher throughput against a raw rstream loop --------------------------------------


def throughput(settings: Settings) -> list[Result]:
    extras = _extras(THROUGHPUT_RECORDS)
    bodies = _bodies(settings, extras)
    ours: list[float] = []
    raw: list[float] = []
    spooled: list[int] = []
    for round_ in range(THROUGHPUT_ROUNDS):
        # Alternate which goes first: the broker's state (segment files, memory) drifts.
        if round_ % 2 == 0:
            raw.append(asyncio.run(_raw_rate(settings, bodies)))
        rate, spilled = _publisher_rate(settings, extras)
        ours.append(rate)
        spooled.append(spilled)
        if round_ % 2 == 1:
            raw.append(asyncio.run(_raw_rate(settings, bodies)))
    return [
        Result(
            AREA,
            "publisher throughput with confirms vs raw rstream",
            median(ours),
            median(raw),
            "records/s",
            ">= 0.7x",
            median(ours) >= 0.7 * median(raw),
            f"median of {THROUGHPUT_ROUNDS} rounds of {THROUGHPUT_RECORDS:,} records; rounds "
            f"ours {_rounds(ours)}, raw {_rounds(raw)}; spooled on the way {_rounds(spooled)}",
        ),
    ]


def _bodies(settings: Settings, extras: Sequence[dict[str, Any]]) -> list[bytes]:
    """The JSON bodies the publisher sends for these calls, encoded exactly as it does."""
    handler = AuditHandler(settings=settings, transport_factory=CapturingTransport)
    logger = _logger("bodies", handler)
    for extra in extras:
        logger.info(MESSAGE, extra=extra)
    handler.close()
    assert isinstance(handler.transport, CapturingTransport)
    return handler.transport.bodies


def _publisher_rate(settings: Settings, extras: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """records/s from the first emit to ``flush()`` returning 0, and how many were spooled."""
    with contextlib.ExitStack() as stack:
        handler, audit = _audit(settings, stack)
        # Connected, stream declared, publisher registered: not part of the rate.
        audit.logger.info(MESSAGE, extra=extras[0])
        audit.settle()
        gc.collect()
        info = audit.logger.info
        began = time.perf_counter()
        for extra in extras:
            info(MESSAGE, extra=extra)
        left = handler.flush(DRAIN_TIMEOUT)
        elapsed = time.perf_counter() - began
        if left:
            raise RuntimeError(f"bench capture: {left} records unconfirmed after flush")
        return len(extras) / elapsed, handler.stats()["spooled"]


async def _raw_rate(settings: Settings, bodies: Sequence[bytes]) -> float:
    """records/s of a bare send_batch loop, from the first batch to the last confirm."""
    properties = Properties(content_type="application/json")
    stream, name = settings.rabbitmq_stream_name, f"bench-raw-{uuid.uuid4().hex[:8]}"
    confirmed = 0
    done = asyncio.Event()

    def on_confirm(status: ConfirmationStatus) -> None:
        nonlocal confirmed
        if not status.is_confirmed:
            raise RuntimeError("bench capture: the broker refused a message")
        confirmed += 1
        if confirmed == len(bodies) + 1:
            done.set()

    async with Producer(**settings.stream_client_args()) as producer:
        await producer.create_stream(stream, exists_ok=True, arguments={"max-age": "7D"})
        # As for ours: the publisher is registered (with a name, for deduplication) first.
        first = AMQPMessage(body=bodies[0], properties=properties)
        await producer.send_batch(
            stream, [first], publisher_name=name, on_publish_confirm=on_confirm
        )
        began = time.perf_counter()
        for start in range(0, len(bodies), RAW_BATCH):
            batch = [
                AMQPMessage(body=body, properties=properties)
                for body in bodies[start : start + RAW_BATCH]
            ]
            await producer.send_batch(
                stream, batch, publisher_name=name, on_publish_confirm=on_confirm
            )
        await asyncio.wait_for(done.wait(), DRAIN_TIMEOUT)
        return len(bodies) / (time.perf_counter() - began)


# -- the run ---------------------------------------------------------------------------------


def _delete_stream(settings: Settings) -> None:
    try:
        asyncio.run(delete_stream(settings))
    except Exception as exc:  # noqa: BLE001 - a leftover stream must not cost the results
        print(f"bench capture: could not delete {settings.rabbitmq_stream_name}: {exc!r}")


def _measures() -> list[Callable[[Settings], list[Result]]]:
    """All three, or those named in BENCH_CAPTURE_MEASURES (``per_call,throughput``): the
    outage measure stops the broker's app, which a shared machine may not want."""
    known = {"per_call": per_call, "outage": outage, "throughput": throughput}
    names = os.environ.get("BENCH_CAPTURE_MEASURES", ",".join(known)).split(",")
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"BENCH_CAPTURE_MEASURES: unknown {unknown}, known {sorted(known)}")
    return [known[name] for name in names]


def run(settings: Settings) -> list[Result]:
    ensure_postgres()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-capture-spool-") as spool:
        own = dataclasses.replace(
            settings,
            rabbitmq_stream_name=f"bench-capture-{uuid.uuid4().hex[:8]}",
            spool_dir=Path(spool),
        )
        try:
            for measure in _measures():
                print(f"bench capture: {measure.__name__} ...", flush=True)
                results.extend(measure(own))
        finally:
            _delete_stream(own)
    return results
