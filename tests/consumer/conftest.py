"""Fixtures for the consumer tests: consumer processes that are always killed afterwards,
and a second set of sinks for a second consumer name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from audit_logging.settings import Settings
from tests._stack import delete_indices, delete_objects, unique
from tests.consumer._helpers import ConsumerProcess, consumer_env

StartConsumer = Callable[..., ConsumerProcess]


@pytest.fixture
def start_consumer(
    stack_env: dict[str, str], settings: Settings, tmp_path: Path
) -> Iterator[StartConsumer]:
    """Start ``python -m audit_logging.consumer *args`` for this test's stream and sinks."""
    started: list[ConsumerProcess] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        sinks: Settings | None = None,
        workdir: str = "consumer",
        crash_after_upload: int | None = None,
        wrapper: Sequence[str] | None = None,
    ) -> ConsumerProcess:
        process_env = consumer_env(stack_env, sinks or settings, **(env or {}))
        if crash_after_upload is not None:
            wrapper = ["tests.consumer._crashing_consumer", str(crash_after_upload)]
        process = ConsumerProcess(process_env, args, tmp_path / workdir, wrapper=wrapper).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def other_sinks(settings: Settings) -> Iterator[Settings]:
    """The same stream, with its own index prefix and S3 prefix (removed afterwards)."""
    other = dataclasses.replace(
        settings,
        opensearch_index_prefix=unique("test-audit-b"),
        s3_prefix=unique("tests-b") + "/",
    )
    yield other
    delete_indices(other, other.opensearch_index_prefix)
    delete_objects(other, other.s3_prefix)
