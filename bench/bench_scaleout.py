"""Scale-out benchmarks (super streams), each against a baseline measured in the same run:

* consumer throughput: 2 ``python -m audit_logging.consumer`` processes of one group on a
  2-partition super stream against 1 on a single stream, the same records published to each
  beforehand (split evenly, a whole number of batches per partition); records / (first record
  read → last batch archived and indexed, offsets stored at the end of every partition), in
  rounds ordered 1, 2, 2, 1. On 2 cores shared with OpenSearch a second consumer cannot
  double the rate, so beside it come the CPU seconds per record, within each window, of the
  consumer processes, OpenSearch's JVM, the broker, moto and the rest of the machine: where
  the time goes;
* publisher throughput: ``StreamPublisher`` from the first ``submit`` to ``flush()``
  returning 0, to a 3-partition super stream against a single stream, in alternated rounds,
  with the CPU seconds per record of the publishing process (all its threads) and the broker.

With py-spy installed (on the PATH, or named by ``BENCH_SCALEOUT_PYSPY``), an extra round
of each configuration, not measured, is profiled and the notes say where the time goes.
Every run uses streams, index prefixes and S3 prefixes of its own, removed afterwards.
``BENCH_SCALEOUT_RECORDS`` and ``BENCH_SCALEOUT_PUBLISH_RECORDS`` shrink the runs for a try.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from rstream import Consumer, MessageContext

from audit_logging.partitions import log_id_of, partition_index, partition_names
from audit_logging.publisher import StreamPublisher
from audit_logging.search_index import index_pattern
from audit_logging.settings import Settings
from bench._results import HERE, Result, median
from bench._stack import (
    LOCAL_ENV,
    ConsumerProcess,
    archived_log_ids,
    delete_stream,
    log_time,
    opensearch,
    remove_sinks,
    stored_offsets,
)
from bench.bench_consumer import many_bodies

AREA: Final = "scaleout"
RECORDS: Final = int(os.environ.get("BENCH_SCALEOUT_RECORDS", "200000"))
BATCH: Final = 5000  # as the consumer area's throughput run
FLUSH_INTERVAL: Final = 5
CONSUMER_PARTITIONS: Final = 2
CONSUMER_ROUNDS: Final = 2  # per configuration, in the order a b b a
# Rounds of 100,000 last under a second here: too short to even out the noise of others.
PUBLISH_RECORDS: Final = int(os.environ.get("BENCH_SCALEOUT_PUBLISH_RECORDS", "300000"))
PUBLISH_PARTITIONS: Final = 3
PUBLISH_ROUNDS: Final = 5  # per configuration, alternating which goes first
PROFILE_ROUNDS: Final = 3  # extra publisher rounds under py-spy, when there is one
# The goal is "no drop"; 10% allows for the noise of a shared 2-core machine.
RATE_GOAL: Final = 0.9
CPU_GOAL: Final = 1.1
SAMPLE_EVERY: Final = 0.2
DRAIN_TIMEOUT: Final = 300.0
CONSUME_TIMEOUT: Final = 900.0
OPENSEARCH_PID: Final = HERE.parent / "devstack" / ".state" / "opensearch" / "opensearch.pid"
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

_STARTED = re.compile(r"(?:has no stored offset on stream|resumes stream) '")
_ACTIVE = re.compile(r"is the active consumer of group '[^']+' on partition '([^']+)'")
_STANDBY = re.compile(r"is a standby of group '[^']+' on partition '([^']+)'")
_HANDED = re.compile(r"handed partition '([^']+)' of super stream")
_BATCH = re.compile(r" batch \d+: ")
_LINE = re.compile(r":\d+\)$")


def _identity(body: bytes) -> bytes:
    return body


# -- streams and sinks of their own ----------------------------------------------------------


@contextlib.contextmanager
def _own_stream(settings: Settings, tag: str, partitions: int) -> Iterator[Settings]:
    """Settings naming a stream (or super stream of ``partitions``) of their own, deleted
    afterwards with its partitions and stored offsets."""
    name = f"bench-scaleout-{tag}-{uuid.uuid4().hex[:8]}"
    own = dataclasses.replace(settings, rabbitmq_stream_name=name, stream_partitions=partitions)
    try:
        yield own
    finally:
        asyncio.run(delete_stream(own))


@contextlib.contextmanager
def _own_sinks(settings: Settings, tag: str) -> Iterator[Settings]:
    """Settings with an index prefix and an S3 prefix of their own, emptied afterwards."""
    name = f"bench-scaleout-{tag}-{uuid.uuid4().hex[:8]}"
    own = dataclasses.replace(settings, opensearch_index_prefix=name, s3_prefix=f"{name}/")
    try:
        yield own
    finally:
        remove_sinks(own)


def _publisher(settings: Settings, spool: str, queue_size: int) -> StreamPublisher:
    # A spool folder of its own (nothing to adopt) and a queue that holds every record, so
    # that what is measured is the link to the broker, not the overflow file.
    own = dataclasses.replace(settings, spool_dir=Path(spool), queue_size=max(queue_size, 1))
    return StreamPublisher(own, _identity)


def _publish_all(settings: Settings, bodies: Sequence[bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-spool-") as spool:
        publisher = _publisher(settings, spool, len(bodies))
        for body in bodies:
            publisher.submit(body)
        left = publisher.close(DRAIN_TIMEOUT)
    if left:
        raise RuntimeError(f"bench scaleout: {left} records not confirmed")


# -- CPU, from /proc ------------------------------------------------------------------------


def _process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and brackets
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_cpu() -> float:
    """CPU seconds every core spent busy since boot (idle and iowait left out)."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _cmdline(pid: str) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def _services() -> dict[str, list[int]]:
    """The pids of the shared stack: OpenSearch's JVM, the broker on the stream port (not
    the nodes of a test cluster: those count as the rest of the machine), moto."""
    node = os.environ.get("RABBITMQ_DEVSTACK_NODENAME", "audit@localhost")
    found: dict[str, list[int]] = {"OpenSearch": [], "RabbitMQ": [], "moto": []}
    beams: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        command = _cmdline(entry.name)
        if "org.opensearch.bootstrap.OpenSearch" in command:
            found["OpenSearch"].append(int(entry.name))
        elif "moto.server" in command:
            found["moto"].append(int(entry.name))
        elif command.split(" ", 1)[0].endswith("/beam.smp"):
            beams.append(int(entry.name))
            if _environ(entry.name).get("RABBITMQ_NODENAME") == node:
                found["RabbitMQ"].append(int(entry.name))
    if not found["RabbitMQ"] and len(beams) == 1:
        found["RabbitMQ"] = beams
    if not found["OpenSearch"] and OPENSEARCH_PID.exists():
        found["OpenSearch"] = [int(OPENSEARCH_PID.read_text().strip())]
    missing = [label for label, pids in found.items() if not pids]
    if missing:
        raise RuntimeError(f"bench scaleout: no process found for {', '.join(missing)}")
    return found


class _CpuSampler(threading.Thread):
    """Cumulative CPU seconds of each group of processes and of the whole machine, sampled
    every SAMPLE_EVERY s with the wall-clock time (the consumers' log lines use it too)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        super().__init__(daemon=True)
        self.groups = {label: list(pids) for label, pids in groups.items()}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._last: dict[int, float] = {}  # a process that is gone keeps its last figure
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sample()

    def track(self, label: str, pid: int) -> None:
        with self._lock:
            self.groups.setdefault(label, []).append(pid)

    def run(self) -> None:
        while not self._stopping.wait(SAMPLE_EVERY):
            self._sample()

    def finish(self) -> None:
        self._stopping.set()
        self.join(10)
        self._sample()

    def _sample(self) -> None:
        with self._lock:
            groups = {label: list(pids) for label, pids in self.groups.items()}
        values = {"machine": _machine_cpu()}
        for label, pids in groups.items():
            total = 0.0
            for pid in pids:
                cpu = _process_cpu(pid)
                if cpu is not None:
                    self._last[pid] = cpu
                total += self._last.get(pid, 0.0)  # not started yet: 0
            values[label] = total
        self.samples.append((time.time(), values))

    def between(self, began: float, ended: float) -> dict[str, float]:
        """CPU seconds of each label from ``began`` to ``ended``, interpolated linearly."""
        return {
            label: self._at(label, ended) - self._at(label, began) for label in self.samples[-1][1]
        }

    def _at(self, label: str, moment: float) -> float:
        before = self.samples[0]
        for sample in self.samples:
            if sample[0] >= moment:
                span = sample[0] - before[0]
                low, high = before[1].get(label, 0.0), sample[1].get(label, 0.0)
                if span <= 0:
                    return high
                return low + (high - low) * (moment - before[0]) / span
            before = sample
        return self.samples[-1][1].get(label, 0.0)


# -- py-spy ---------------------------------------------------------------------------------


def _pyspy() -> str | None:
    """py-spy (``pip install py-spy``) if there is one: an extra, unmeasured round of each
    configuration is then profiled, and the notes name the hottest functions."""
    return os.environ.get("BENCH_SCALEOUT_PYSPY") or shutil.which("py-spy")


class _Profile:
    """``py-spy record`` of one process into a file of collapsed stacks."""

    def __init__(self, pyspy: str, pid: int, path: Path, rate: int = 100) -> None:
        self.path = path
        command = [pyspy, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate)]
        command += ["--nonblocking", "--output", str(path)]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def finish(self) -> None:
        """Stop sampling (it stops by itself when its process exits); the file is written."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stacks(paths: Sequence[Path], within: str = "") -> Iterator[tuple[list[str], int]]:
    """(frames, samples) of each collapsed stack that holds ``within``; frames without
    their line numbers."""
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            # An empty stack: a thread with no Python frames (in native code only).
            if stack and within in stack and count.isdigit():
                yield [_LINE.sub(")", frame) for frame in stack.split(";")], int(count)


def _hottest(paths: Sequence[Path], within: str = "", top: int = 6) -> str:
    """The ``top`` functions by samples on top of the stack (self time), with their share."""
    own: Counter[str] = Counter()
    for frames, count in _stacks(paths, within):
        own[frames[-1]] += count
    total = sum(own.values())
    if not total:
        return "no samples"
    return ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in own.most_common(top))


# -- consumer throughput --------------------------------------------------------------------


class _Member(ConsumerProcess):
    """One ``python -m audit_logging.consumer`` of the group, in a session of its own."""

    def __init__(self, settings: Settings, group: str) -> None:
        batching = ("--batch-size", str(BATCH), "--flush-interval", str(FLUSH_INTERVAL))
        super().__init__(settings, *batching, name=group, new_session=True)

    def active(self) -> set[str]:
        """The partitions its log says it is active on now."""
        active: set[str] = set()
        for line in self.log().splitlines():
            if found := _ACTIVE.search(line):
                active.add(found.group(1))
            elif found := _HANDED.search(line) or _STANDBY.search(line):
                active.discard(found.group(1))
        return active

    def joined(self) -> set[str]:
        log = self.log()
        return {m.group(1) for regex in (_ACTIVE, _STANDBY) for m in regex.finditer(log)}


def _wait(
    what: str,
    members: Sequence[_Member],
    done: Callable[[], bool],
    timeout: float,
    every: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline or not all(m.running() for m in members):
            logs = "\n---\n".join(m.log()[-3000:] for m in members)
            raise RuntimeError(f"bench scaleout: no {what} within {timeout:.0f} s:\n{logs}")
        time.sleep(every)


def _reached(settings: Settings, ends: dict[str, int], group: str) -> bool:
    try:
        stored = asyncio.run(stored_offsets(settings, list(ends), group))
    except Exception:  # noqa: BLE001 - a broker hiccup: ask again at the next poll
        return False
    return stored == ends


def _has_joined(member: _Member, settings: Settings) -> Callable[[], bool]:
    return lambda: len(member.joined()) == settings.stream_partitions


@dataclasses.dataclass(frozen=True)
class _Window:
    """One configuration's run: from the first record read to the last batch archived."""

    records: int
    began: float
    ended: float
    cpu: dict[str, float]  # CPU seconds within the window, by process group and "machine"
    spread: float | None  # seconds from the first read until each member had its partition

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def _consume(
    settings: Settings,
    ends: dict[str, int],
    records: int,
    members: int,
    profile: tuple[str, Path] | None = None,
) -> _Window:
    """Starts ``members`` consumers one after another (each once it joined every partition,
    so that the broker gives each one its own) and waits until every offset in ``ends`` is
    stored. ``profile`` (py-spy, a folder): each member is sampled into that folder."""
    # A group of its own: the streams are read again in later rounds, from the start.
    group = settings.opensearch_index_prefix
    sampler = _CpuSampler(_services())
    sampler.track("bench", os.getpid())
    started: list[_Member] = []
    profiles: list[_Profile] = []
    sampler.start()
    try:
        for index in range(members):
            member = _Member(settings, group)
            started.append(member)
            sampler.track("consumers", member.proc.pid)
            if profile is not None:
                pyspy, folder = profile
                profiles.append(_Profile(pyspy, member.proc.pid, folder / f"member-{index}.txt"))
            if settings.stream_partitions > 1:
                _wait("join of every partition", started, _has_joined(member, settings), 60)
        if members > 1:
            _wait(
                "member active on one partition each",
                started,
                lambda: all(len(m.active()) == 1 for m in started),
                60,
            )
        # Polled slowly: each poll is a connection to the broker, whose CPU is measured.
        _wait(
            "stored offset at the end of each stream",
            started,
            lambda: _reached(settings, ends, group),
            CONSUME_TIMEOUT,
            every=0.5,
        )
    finally:
        codes = [member.stop() for member in started]
        sampler.finish()
        for recording in profiles:
            recording.finish()
    logs = [member.log() for member in started]
    for member in started:
        shutil.rmtree(member.workdir, ignore_errors=True)
    if any(codes):
        raise RuntimeError(f"bench scaleout: consumers exited {codes}:\n" + "\n---\n".join(logs))
    lines = [line for log in logs for line in log.splitlines()]
    began = min(log_time(line) for line in lines if _STARTED.search(line))
    ended = max(log_time(line) for line in lines if _BATCH.search(line))
    spread = None
    if members > 1:
        # The last activation in the window: from then on each member reads its own
        # partition (a member stopping at the end hands its partition to the other).
        activations = (log_time(line) for line in lines if _ACTIVE.search(line))
        spread = max(moment for moment in activations if moment <= ended) - began
    return _Window(records, began, ended, sampler.between(began, ended), spread)


def _check_sinks(settings: Settings, expected: set[str]) -> None:
    """Every record once in S3 and in OpenSearch: a rate of anything else means nothing."""
    rows = archived_log_ids(settings)
    client = opensearch(settings)
    pattern = index_pattern(settings.opensearch_index_prefix)
    try:
        client.indices.refresh(index=pattern)
        indexed = int(client.count(index=pattern)["count"])
    finally:
        client.close()
    repeated = sum(n - 1 for n in Counter(rows).values() if n > 1)
    if repeated or set(rows) != expected or indexed != len(expected):
        raise RuntimeError(
            f"bench scaleout: {len(expected):,} records published; S3 holds {len(rows):,} rows "
            f"({repeated} repeated, {len(expected - set(rows))} missing), OpenSearch {indexed:,}"
        )


def _ends(settings: Settings, bodies: Sequence[bytes]) -> dict[str, int]:
    """The last offset of each stream once ``bodies`` are published to it, by routing."""
    count = settings.stream_partitions
    names = (
        partition_names(settings.rabbitmq_stream_name, count)
        if count > 1
        else [settings.rabbitmq_stream_name]
    )
    per = Counter(partition_index(log_id_of(body), count) for body in bodies)
    return {name: per[index] - 1 for index, name in enumerate(names) if per[index]}


async def _count_chunks(settings: Settings, ends: dict[str, int]) -> int:
    """Chunks the broker wrote for these streams, counted by distinct chunk timestamps (a
    lower bound: chunks written in the same millisecond count once)."""
    stamps: set[tuple[str, int]] = set()
    async with Consumer(**settings.stream_client_args()) as consumer:
        for stream, end in ends.items():
            done = asyncio.Event()

            def seen(
                _: object, context: MessageContext, end: int = end, done: asyncio.Event = done
            ) -> None:
                stamps.add((context.stream, context.timestamp))
                if context.offset >= end:
                    done.set()

            subscription = await consumer.subscribe(stream, seen)
            await asyncio.wait_for(done.wait(), 120)
            await consumer.unsubscribe(subscription)
    return len(stamps)


def _per_record(windows: Sequence[_Window], label: str) -> float:
    """CPU µs per record over all rounds of a configuration."""
    return 1e6 * sum(w.cpu.get(label, 0.0) for w in windows) / sum(w.records for w in windows)


def _rest(window: _Window) -> float:
    known = ("consumers", "OpenSearch", "RabbitMQ", "moto")
    return window.cpu["machine"] - sum(window.cpu.get(label, 0.0) for label in known)


def _rounds(values: Sequence[float], digits: int = 0) -> str:
    return "/".join(f"{value:,.{digits}f}" for value in values)


# Where the consumer processes spend their time, by the frames that hold each part.
_CONSUME_STAGES: Final = (
    ("decode and check", "Admission.admit"),
    ("Parquet", "ConsumerService._write_parquet"),
    ("OpenSearch bulk", "Indexer.index"),
    ("credit per chunk", "Client.credit"),
)


def _profile_consumers(pyspy: str, streams: Sequence[Settings], bodies: Sequence[bytes]) -> str:
    """py-spy of the consumer processes through an extra round of each configuration (not
    measured: py-spy takes CPU from the same 2 cores)."""
    found: dict[int, tuple[str, str]] = {}
    for own in streams:
        count = own.stream_partitions
        with (
            _own_sinks(own, f"prof-p{count}") as sinks,
            tempfile.TemporaryDirectory(prefix="bench-scaleout-pyspy-") as folder,
        ):
            _consume(sinks, _ends(own, bodies), len(bodies), count, (pyspy, Path(folder)))
            paths = sorted(Path(folder).glob("*.txt"))
            found[count] = _shares(paths, _CONSUME_STAGES), _hottest(paths, top=4)
    (one_shares, _), (shares, hottest) = found[1], found[CONSUMER_PARTITIONS]
    return (
        f"py-spy, an extra round each, share of the consumers' samples: "
        f"{CONSUMER_PARTITIONS} consumers {shares}; 1 consumer {one_shares}; hottest (self) "
        f"with {CONSUMER_PARTITIONS}: {hottest}"
    )


def consumer_throughput(settings: Settings, bodies: Sequence[bytes]) -> list[Result]:
    expected = {log_id_of(body) for body in bodies}
    runs: dict[int, list[_Window]] = {1: [], CONSUMER_PARTITIONS: []}
    with (
        _own_stream(settings, "one", 1) as single,
        _own_stream(settings, f"p{CONSUMER_PARTITIONS}", CONSUMER_PARTITIONS) as parted,
    ):
        for own in (single, parted):
            print(
                f"bench scaleout: publishing {len(bodies):,} records to "
                f"{own.rabbitmq_stream_name} ...",
                flush=True,
            )
            _publish_all(own, bodies)
        chunks = {
            own.stream_partitions: asyncio.run(_count_chunks(own, _ends(own, bodies)))
            for own in (single, parted)
        }
        for round_ in range(CONSUMER_ROUNDS):
            order = (single, parted) if round_ % 2 == 0 else (parted, single)
            for own in order:
                count = own.stream_partitions
                with _own_sinks(own, f"r{round_}p{count}") as sinks:
                    window = _consume(sinks, _ends(own, bodies), len(bodies), count)
                    _check_sinks(sinks, expected)
                runs[count].append(window)
                print(
                    f"bench scaleout: {count} consumer(s) on {count} stream(s): "
                    f"{window.rate:,.0f} records/s over {window.seconds:.1f} s",
                    flush=True,
                )
        pyspy = _pyspy()
        profile = ""
        if pyspy is not None:
            print("bench scaleout: profiling the consumers ...", flush=True)
            profile = "; " + _profile_consumers(pyspy, (single, parted), bodies)
    one, two = runs[1], runs[CONSUMER_PARTITIONS]
    rate_one, rate_two = median([w.rate for w in one]), median([w.rate for w in two])
    n = CONSUMER_PARTITIONS
    cores = os.cpu_count() or 1

    def busy(windows: Sequence[_Window]) -> float:
        return (
            100 * sum(w.cpu["machine"] for w in windows) / sum(w.seconds for w in windows) / cores
        )

    def cpu_row(label: str, what: str, note: str) -> Result:
        ours, base = _per_record(two, label), _per_record(one, label)
        return Result(
            AREA,
            f"CPU per record, {what}: {n} consumers vs 1",
            ours,
            base,
            "CPU µs",
            "-",
            None,
            note,
        )

    rest_two = 1e6 * sum(_rest(w) for w in two) / sum(w.records for w in two)
    rest_one = 1e6 * sum(_rest(w) for w in one) / sum(w.records for w in one)
    own_share = 1e6 * sum(w.cpu["bench"] for w in one + two) / sum(w.records for w in one + two)
    spreads = [w.spread for w in two if w.spread is not None]
    return [
        Result(
            AREA,
            f"consumer throughput, {n} consumers on a {n}-partition super stream vs 1 on a "
            f"single stream, {len(bodies):,} records",
            rate_two,
            rate_one,
            "records/s",
            "- (2x not reachable on 2 shared cores)",
            None,
            f"median of {CONSUMER_ROUNDS} rounds each, order 1,{n},{n},1; rounds {n} "
            f"consumers {_rounds([w.rate for w in two])}, 1 consumer "
            f"{_rounds([w.rate for w in one])}; from the first record read to the last batch "
            f"archived (offsets stored at every partition's end; S3 rows = OpenSearch docs = "
            f"unique log_ids checked); batches of {BATCH}, {len(bodies) // n:,} records on "
            f"each partition (no partial last batch waits for the flush interval); members "
            f"started one after the other, each active on its own partition "
            f"{_rounds(spreads, 1)} s after the first read (the first member reads both "
            f"partitions until then)",
        ),
        cpu_row(
            "consumers",
            "the consumer processes",
            f"user + system, all threads, from /proc/<pid>/stat, summed over the {n} "
            f"processes (each also holds a standby subscription to the other partition); "
            f"the published records came in {len(bodies) / chunks[n]:,.0f} records per chunk "
            f"on the partitions, {len(bodies) / chunks[1]:,.0f} on the single stream (each "
            f"chunk is a delivery and a credit frame){profile}",
        ),
        cpu_row(
            "OpenSearch",
            "OpenSearch's JVM",
            "bulk indexing of the same documents; this and the next two are the shared "
            "stack's processes: they also count whatever other clients asked of them meanwhile",
        ),
        cpu_row(
            "RabbitMQ",
            "the broker (beam.smp)",
            "the stack's node only; a test cluster's nodes count in the rest",
        ),
        cpu_row("moto", "S3 (moto)", "the Parquet uploads"),
        Result(
            AREA,
            f"CPU per record, rest of the machine: {n} consumers vs 1",
            rest_two,
            rest_one,
            "CPU µs",
            "-",
            None,
            f"all cores busy (/proc/stat) minus the four above: the kernel's share, this "
            f"benchmark's polling ({own_share:.1f} µs/record) and anything else running here",
        ),
        Result(
            AREA,
            f"machine busy during the runs: {n} consumers vs 1",
            busy(two),
            busy(one),
            "% of cores",
            "-",
            None,
            f"{cores} cores; rounds {n} consumers "
            f"{_rounds([100 * w.cpu['machine'] / w.seconds / cores for w in two])}%, 1 "
            f"consumer {_rounds([100 * w.cpu['machine'] / w.seconds / cores for w in one])}%",
        ),
    ]


# -- publisher throughput -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Publishing:
    """One round of the publisher: records/s from the first submit to ``flush()`` returning
    0, CPU µs per record of this process and of the broker over that time, and how many
    records went through the spool."""

    rate: float
    cpu: float
    broker_cpu: float
    spooled: int


def _broker_cpu(pids: Sequence[int]) -> float:
    return sum(cpu for pid in pids if (cpu := _process_cpu(pid)) is not None)


def _publish_round(
    settings: Settings, bodies: Sequence[bytes], warm: Sequence[bytes], broker: Sequence[int]
) -> _Publishing:
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-spool-") as spool:
        publisher = _publisher(settings, spool, len(bodies))
        try:
            # Connected, stream checked, publisher declared on every partition: not timed.
            for body in warm:
                publisher.submit(body)
            if publisher.flush(DRAIN_TIMEOUT):
                raise RuntimeError("bench scaleout: the warm-up records were not confirmed")
            gc.collect()
            submit = publisher.submit
            broker_cpu, cpu = _broker_cpu(broker), time.process_time()
            began = time.perf_counter()
            for body in bodies:
                submit(body)
            left = publisher.flush(DRAIN_TIMEOUT)
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
            broker_cpu = _broker_cpu(broker) - broker_cpu
            spooled = publisher.stats()["spooled"]
        finally:
            publisher.close(DRAIN_TIMEOUT)
    if left:
        raise RuntimeError(f"bench scaleout: {left} records unconfirmed after flush")
    per = 1e6 / len(bodies)
    return _Publishing(len(bodies) / elapsed, cpu * per, broker_cpu * per, spooled)


# Where the publisher's thread spends its time, by the frames that hold each part.
_PUBLISH_STAGES: Final = (
    ("take and frame", "StreamPublisher._take"),
    ("route", "route (audit_logging/partitions.py)"),
    ("send_batch", "Producer.send_batch"),
    ("socket writes", "_SelectorSocketTransport.write"),
    ("confirms", "Producer._on_publish_confirm"),
    ("poll", "EpollSelector.select"),
)
_PUBLISHER_THREAD: Final = "StreamPublisher._run"


def _shares(paths: Sequence[Path], stages: Sequence[tuple[str, str]], within: str = "") -> str:
    """The share of samples whose stack holds each stage's frame (inclusive)."""
    total = 0
    held: Counter[str] = Counter()
    for frames, count in _stacks(paths, within):
        total += count
        for label, frame in stages:
            if any(frame in name for name in frames):
                held[label] += count
    if not total:
        return "no samples"
    return ", ".join(f"{label} {100 * held[label] / total:.0f}%" for label, _ in stages)


def _profile_publisher(
    pyspy: str, streams: Sequence[Settings], bodies: Sequence[bytes], warm: Sequence[bytes]
) -> str:
    """py-spy of this process through extra rounds of each configuration (not measured)."""
    found: dict[int, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-pyspy-") as folder:
        for own in streams:
            path = Path(folder) / f"publisher-{own.stream_partitions}.txt"
            recording = _Profile(pyspy, os.getpid(), path, rate=500)
            time.sleep(1)  # py-spy attached
            for _ in range(PROFILE_ROUNDS):
                _publish_round(own, bodies, warm, [])
            recording.finish()
            hottest = _hottest([path], _PUBLISHER_THREAD, top=4)
            shares = _shares([path], _PUBLISH_STAGES, _PUBLISHER_THREAD)
            found[own.stream_partitions] = shares, hottest
    (one_shares, _), (shares, hottest) = found[1], found[PUBLISH_PARTITIONS]
    return (
        f"py-spy of the publisher thread, {PROFILE_ROUNDS} extra rounds each, share of its "
        f"samples: super stream {shares}; single {one_shares}; hottest (self) on the super "
        f"stream: {hottest}"
    )


def publisher_throughput(
    settings: Settings, bodies: Sequence[bytes], spare: Sequence[bytes]
) -> list[Result]:
    # One warm-up record for each partition (the same ones for the single stream).
    warm: dict[int, bytes] = {}
    for body in spare:
        warm.setdefault(partition_index(log_id_of(body), PUBLISH_PARTITIONS), body)
    broker = _services()["RabbitMQ"]
    rounds: dict[int, list[_Publishing]] = {1: [], PUBLISH_PARTITIONS: []}
    profile = ""
    with (
        _own_stream(settings, "pub", 1) as single,
        _own_stream(settings, f"pub-p{PUBLISH_PARTITIONS}", PUBLISH_PARTITIONS) as parted,
    ):
        for round_ in range(PUBLISH_ROUNDS):
            # Alternate which goes first: the broker's state (segments, memory) drifts.
            for own in (single, parted) if round_ % 2 == 0 else (parted, single):
                result = _publish_round(own, bodies, list(warm.values()), broker)
                rounds[own.stream_partitions].append(result)
                print(
                    f"bench scaleout: publisher to {own.stream_partitions} stream(s): "
                    f"{result.rate:,.0f} records/s, {result.cpu:.1f} CPU µs/record",
                    flush=True,
                )
        pyspy = _pyspy()
        if pyspy is not None:
            print("bench scaleout: profiling the publisher ...", flush=True)
            profile = "; " + _profile_publisher(
                pyspy, (single, parted), bodies, list(warm.values())
            )
    n = PUBLISH_PARTITIONS
    one, many = rounds[1], rounds[n]
    ours, base = median([r.rate for r in many]), median([r.rate for r in one])
    cpu_ours, cpu_base = median([r.cpu for r in many]), median([r.cpu for r in one])
    broker_ours, broker_base = (
        median([r.broker_cpu for r in many]),
        median([r.broker_cpu for r in one]),
    )
    return [
        Result(
            AREA,
            f"publisher throughput, {n}-partition super stream vs single stream, "
            f"{len(bodies):,} records",
            ours,
            base,
            "records/s",
            f">= {RATE_GOAL:g}x",
            ours >= RATE_GOAL * base,
            f"StreamPublisher, first submit to flush() = 0 (every record confirmed); median of "
            f"{PUBLISH_ROUNDS} alternated rounds; rounds super {_rounds([r.rate for r in many])}, "
            f"single {_rounds([r.rate for r in one])}; the issue asks for no drop: "
            f"{RATE_GOAL:g}x allows for a shared 2-core machine's noise; spooled on the way "
            f"{sum(r.spooled for r in one + many)}",
        ),
        Result(
            AREA,
            f"publisher CPU per record, {n}-partition super stream vs single stream",
            cpu_ours,
            cpu_base,
            "CPU µs",
            f"<= {CPU_GOAL:g}x",
            cpu_ours <= CPU_GOAL * cpu_base,
            f"time.process_time() of the publishing process (submit loop and publisher "
            f"thread); rounds super {_rounds([r.cpu for r in many], 1)}, single "
            f"{_rounds([r.cpu for r in one], 1)}; the broker meanwhile {broker_ours:.1f} vs "
            f"{broker_base:.1f} CPU µs/record{profile}",
        ),
    ]


def _even(bodies: Sequence[bytes], per_partition: int) -> list[bytes]:
    """The first ``per_partition`` bodies of each of the consumer area's partitions, in their
    order: every partition then ends on a full batch, and no consumer waits out the flush
    interval for a last, partial one (a wait the single stream would not have)."""
    taken: Counter[int] = Counter()
    chosen = []
    for body in bodies:
        index = partition_index(log_id_of(body), CONSUMER_PARTITIONS)
        if taken[index] < per_partition:
            taken[index] += 1
            chosen.append(body)
    if len(chosen) < per_partition * CONSUMER_PARTITIONS:
        raise RuntimeError("bench scaleout: too few bodies for an even split")
    return chosen


def run(settings: Settings) -> list[Result]:
    per_partition = max(BATCH, RECORDS // CONSUMER_PARTITIONS // BATCH * BATCH)
    # A few percent more than needed: murmur3 splits them nearly, not exactly, evenly.
    wanted = max(per_partition * CONSUMER_PARTITIONS * 21 // 20 + 1000, PUBLISH_RECORDS + 50)
    bodies = list(many_bodies(wanted))
    print("bench scaleout: publisher throughput ...", flush=True)
    results = publisher_throughput(settings, bodies[:PUBLISH_RECORDS], bodies[-50:])
    print("bench scaleout: consumer throughput ...", flush=True)
    results.extend(consumer_throughput(settings, _even(bodies, per_partition)))
    return results


if __name__ == "__main__":
    for result in run(Settings.load(env_file=LOCAL_ENV)):
        print(json.dumps(dataclasses.asdict(result)))
