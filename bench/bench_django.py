"""Django benchmark: what auditing a model change costs a real Django view under gunicorn,
this library against django-auditlog and against no audit, in one run.

The view (``bench/django_site``) loads one Customer row, changes two fields and saves it, so
each library records one model change (an UPDATE with its field changes) per request. The
variants, each a gunicorn server with ``WORKERS`` sync workers on devstack's PostgreSQL (a
database of the run's own, created and dropped here):

* ``none``: no audit;
* ``auditlog``: django-auditlog (its middleware, ``auditlog.register(Customer)``), its
  ``LogEntry`` written to the same PostgreSQL database on the request's thread;
* ``ours``: this library's Django app, middleware and ``register(Customer)``, publishing to a
  RabbitMQ stream of the run's own (deleted afterwards) on a background thread;
* ``wsgi``: this library without its Django app (``AuditWSGIMiddleware`` and a
  ``log_audit_event`` call in the view), for comparison.

The rounds are interleaved: each round starts every variant's server afresh, in an order
rotated by one each round, warms it up, then sends the same ``requests`` POSTs from
``CONCURRENCY`` client threads (``bench/_http_load.py``). Measured per round: requests/s,
p50 and p99 latency at the client, and CPU per request of the server's processes (the
gunicorn master and workers, every thread of theirs, so this library's publisher too), and
of the PostgreSQL backends serving them. Each figure is the median of the rounds, reported
as a ratio: ours / django-auditlog and ours / no audit. After the rounds the run checks
that every request was audited exactly once: django-auditlog's rows in PostgreSQL, this
library's records in its stream, and nothing left in its spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import psutil
import psycopg
from psycopg import sql
from rstream import Consumer

from audit_logging.settings import Settings
from audit_logging.stream_end import stream_end
from bench._gunicorn import Server
from bench._http_load import drive
from bench._results import HERE, Result, median, percentile
from bench._stack import POSTGRES_DSN, delete_stream, ensure_postgres, stack_environ

AREA: Final = "django"
WORKERS: Final = 2  # one per core of the 2-core machine the benchmarks are sized for
CONCURRENCY: Final = 4  # two requests per worker in flight: a worker never waits for one
CUSTOMERS: Final = 500  # rows the requests spread over, so that they seldom wait on a lock
SETTLE: Final = 0.5  # s after the last answer before the CPU is read: the publisher's tail
LIBRARY_VARIANTS: Final = ("ours", "wsgi")  # the variants that publish to a stream
LABELS: Final = {
    "none": "no audit",
    "auditlog": "django-auditlog",
    "ours": "ours (Django app + register)",
    "wsgi": "ours (WSGI middleware + log_audit_event)",
}


@dataclasses.dataclass(frozen=True)
class Plan:
    rounds: int
    requests: int  # measured, per variant and round
    warmup: int  # sent first each round, not measured


# Many short rounds rather than a few long ones: a shared machine's load comes and goes, and
# the median of more interleaved rounds follows it less.
FULL: Final = Plan(rounds=8, requests=1_500, warmup=200)
SMOKE: Final = Plan(rounds=1, requests=40, warmup=10)  # tests/: that the harness still runs


@dataclasses.dataclass
class _Tally:
    """One variant's figures, a value per round."""

    rate: list[float] = dataclasses.field(default_factory=list)
    p50: list[float] = dataclasses.field(default_factory=list)  # ms
    p99: list[float] = dataclasses.field(default_factory=list)  # ms
    cpu: list[float] = dataclasses.field(default_factory=list)  # ms per request, gunicorn
    db_cpu: list[float] = dataclasses.field(default_factory=list)  # ms per request, backends
    served: int = 0  # requests answered, warm-up included: each must have been audited


def run(settings: Settings) -> list[Result]:
    return measure(settings, FULL)


def measure(settings: Settings, plan: Plan) -> list[Result]:
    ensure_postgres()
    variants = ["none", "auditlog", "ours", "wsgi"]
    tag = uuid.uuid4().hex[:8]
    database = f"bench_django_{tag}"
    streams = {v: f"bench-django-{v}-{tag}" for v in variants if v in LIBRARY_VARIANTS}
    tallies = {v: _Tally() for v in variants}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-django-")))
        for stream in streams.values():
            own = dataclasses.replace(settings, rabbitmq_stream_name=stream)
            stack.callback(_delete_stream, own)
        _create_database(database)
        stack.callback(_drop_database, database)

        def environ(variant: str) -> dict[str, str]:
            stream = streams.get(variant, streams["ours"])
            own = dataclasses.replace(settings, rabbitmq_stream_name=stream)
            return stack_environ(own) | {
                "AUDIT_LOG_SPOOL_DIR": str(workdir / f"spool-{variant}"),
                "DJANGO_SETTINGS_MODULE": "bench.django_site.settings",
                "BENCH_DJANGO_VARIANT": variant,
                "BENCH_DJANGO_DB": database,
            }

        _migrate(environ("migrate"), workdir)
        _seed(database)
        for round_ in range(plan.rounds):
            shift = round_ % len(variants)
            for variant in [*variants[shift:], *variants[:shift]]:
                print(f"bench django: round {round_ + 1}/{plan.rounds}: {variant}", flush=True)
                log = workdir / f"gunicorn-{variant}-{round_}.log"
                _round(environ(variant), database, plan, tallies[variant], log)
        _check_audited(settings, database, streams, tallies, workdir)
    return _results(tallies, plan)


# -- one round of one variant -----------------------------------------------------------------


def _paths(start: int, count: int) -> list[str]:
    # Consecutive requests touch rows far apart (211 and CUSTOMERS share no factor).
    return [f"/customers/{(n * 211) % CUSTOMERS + 1}/visit" for n in range(start, start + count)]


class _DisturbedError(Exception):
    """A process measured in a round (a gunicorn worker, a PostgreSQL backend) went away
    during it: its CPU time is lost, so the round is run again."""


ATTEMPTS: Final = 3  # per variant and round


def _round(env: dict[str, str], database: str, plan: Plan, tally: _Tally, log: Path) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _attempt(env, database, plan, tally, log)
            return
        except _DisturbedError as exc:
            if attempt == ATTEMPTS:
                raise RuntimeError(f"bench django: {exc}") from None
            print(f"bench django: round run again: {exc}", flush=True)


def _attempt(env: dict[str, str], database: str, plan: Plan, tally: _Tally, log: Path) -> None:
    server = Server(env, WORKERS, log)
    try:
        warm = drive(server.port, _paths(tally.served, plan.warmup), CONCURRENCY)
        tally.served += len(warm.latencies)
        gunicorn, backends = server.processes(), _backends(database)
        cpu, db_cpu = _cpu_seconds(gunicorn), _cpu_seconds(backends)
        load = drive(server.port, _paths(tally.served, plan.requests), CONCURRENCY)
        tally.served += len(load.latencies)
        time.sleep(SETTLE)
        cpu, db_cpu = _cpu_seconds(gunicorn) - cpu, _cpu_seconds(backends) - db_cpu
        if len(server.processes()) != len(gunicorn):
            raise _DisturbedError(f"gunicorn restarted a worker:\n{server.log()}")
    finally:
        code = server.stop()
    if warm.failed or load.failed or code != 0:
        raise RuntimeError(
            f"bench django: {env['BENCH_DJANGO_VARIANT']}: {warm.failed + load.failed} "
            f"requests failed ({(warm.failures + load.failures)[:5]}), gunicorn exited "
            f"{code}:\n{server.log()}"
        )
    answered = len(load.latencies)
    tally.rate.append(load.rate)
    tally.p50.append(1000 * percentile(load.latencies, 50))
    tally.p99.append(1000 * percentile(load.latencies, 99))
    tally.cpu.append(1000 * cpu / answered)
    tally.db_cpu.append(1000 * db_cpu / answered)


def _backends(database: str) -> list[psutil.Process]:
    """The PostgreSQL backends connected to ``database`` (the server's persistent ones)."""
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [psutil.Process(pid) for (pid,) in rows]


def _cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU time of ``processes`` (every thread of theirs)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            raise _DisturbedError(f"process {process.pid} went away mid-round") from None
        total += times.user + times.system
    return total


# -- the database and the audit trails --------------------------------------------------------


def _create_database(database: str) -> None:
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _drop_database(database: str) -> None:
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def _migrate(env: dict[str, str], workdir: Path) -> None:
    """Every variant's tables (``--run-syncdb``: the benchmark's app has no migrations)."""
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--run-syncdb", "--noinput", "-v", "0"],
        env=env | {"PYTHONPATH": str(HERE.parent)},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench django: migrate exited {done.returncode}:\n{done.stderr}")


def _connect(database: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(POSTGRES_DSN, dbname=database, autocommit=True)


def _seed(database: str) -> None:
    with _connect(database) as conn:
        conn.execute(
            "INSERT INTO bench_site_customer (name, email, plan, visits) "
            "SELECT 'Customer ' || n, 'customer' || n || '@example.com', 'pro', 0 "
            "FROM generate_series(1, %s) AS n",
            (CUSTOMERS,),
        )


def _check_audited(
    settings: Settings,
    database: str,
    streams: dict[str, str],
    tallies: dict[str, _Tally],
    workdir: Path,
) -> None:
    """Every request audited once: ``LogEntry`` rows, records in the stream, no spool left
    (the servers have stopped, so the library's handlers have drained)."""
    found = {"auditlog": _logentries(database)}
    for variant, stream in streams.items():
        found[variant] = asyncio.run(_stream_records(settings, stream))
    wrong = {v: (n, tallies[v].served) for v, n in found.items() if n != tallies[v].served}
    left = sorted(str(p) for p in workdir.glob("spool-*/**/*") if p.is_file())
    if wrong or left:
        raise RuntimeError(
            f"bench django: audited (found, requests) {wrong}; left in the spool: {left[:5]}"
        )


def _logentries(database: str) -> int:
    with _connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM auditlog_logentry").fetchone()
    return int(row[0]) if row else 0


async def _stream_records(settings: Settings, stream: str) -> int:
    # Nothing stores an offset in these streams, so the newest record's offset counts them.
    async with Consumer(**settings.stream_client_args()) as consumer:
        end = await stream_end(consumer, stream)
    return 0 if end is None else end.offset + 1


def _delete_stream(settings: Settings) -> None:
    try:
        asyncio.run(delete_stream(settings))
    except Exception as exc:  # noqa: BLE001 - a leftover stream must not cost the results
        print(f"bench django: could not delete {settings.rabbitmq_stream_name}: {exc!r}")


# -- the results ------------------------------------------------------------------------------


def _rounds(values: Sequence[float]) -> str:
    return "/".join(f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in values)


def _results(tallies: dict[str, _Tally], plan: Plan) -> list[Result]:
    how = (
        f"gunicorn -w {WORKERS} sync, {CONCURRENCY} client threads, median of {plan.rounds} "
        f"interleaved rounds of {plan.requests:,} requests (each server started afresh and "
        f"warmed with {plan.warmup}); PostgreSQL for the app and django-auditlog"
    )
    db = "PostgreSQL backends' CPU per request"
    return [
        *_against("auditlog", tallies, 1.1, how),
        *_against("none", tallies, 0.9, how),
        _compare(
            db,
            "ours",
            "auditlog",
            tallies,
            field="db_cpu",
            unit="ms",
            note="both read the old row before the save; django-auditlog also inserts its row",
        ),
        _compare(db, "ours", "none", tallies, field="db_cpu", unit="ms"),
        # This library without its Django app, for comparison.
        _compare("requests/s", "wsgi", "auditlog", tallies, field="rate", unit="req/s"),
        _compare("requests/s", "wsgi", "none", tallies, field="rate", unit="req/s"),
        _compare("CPU per request", "wsgi", "none", tallies, field="cpu", unit="ms"),
    ]


def _against(base: str, tallies: dict[str, _Tally], goal: float, how: str) -> list[Result]:
    """``ours`` against ``base``: requests/s (against ``goal``), latency, CPU per request."""
    rate = _compare("requests/s", "ours", base, tallies, field="rate", unit="req/s", note=how)
    met = rate.ours >= goal * rate.baseline if rate.baseline else None
    client = "at the client"
    return [
        dataclasses.replace(rate, goal=f">= {goal:g}x", met=met),
        _compare("p50 latency", "ours", base, tallies, field="p50", unit="ms", note=client),
        _compare("p99 latency", "ours", base, tallies, field="p99", unit="ms", note=client),
        _compare(
            "CPU per request",
            "ours",
            base,
            tallies,
            field="cpu",
            unit="ms",
            note="user + system of gunicorn's master and workers (all threads)",
        ),
    ]


def _compare(
    what: str,
    ours: str,
    base: str,
    tallies: dict[str, _Tally],
    *,
    field: str,
    unit: str,
    note: str = "",
) -> Result:
    mine: list[float] = getattr(tallies[ours], field)
    theirs: list[float] = getattr(tallies[base], field)
    rounds = f"rounds {_rounds(mine)} vs {_rounds(theirs)}"
    return Result(
        AREA,
        f"{what}, {LABELS[ours]} vs {LABELS[base]}",
        median(mine),
        median(theirs),
        unit,
        "-",
        None,
        f"{note}; {rounds}" if note else rounds,
    )
