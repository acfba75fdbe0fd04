"""The logging handler against every hostile ``extra=`` value in ``extra/``.

Each file defines ``EXTRA`` (or ``make_extra()``), ``EXPECT`` and optionally ``REPEAT`` and
``cleanup()``. For each: the app's log call never raises, nothing reaches stderr, problems
are reported on the ``audit_logging`` logger without a traceback, and every body the handler
hands to the publisher is one the consumer's decoder accepts unchanged. ``EXPECT`` may say:
``truncated`` (fields listed there), ``extra`` (values in the record's extra object),
``extra_startswith`` (their start), ``reported`` (a phrase of a report), ``max_body`` (bytes).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from audit_logging._decode import decode_record
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from audit_logging.testing import CapturingTransport
from tests._stack import read_stream

CORPUS = Path(__file__).parent / "extra"
FILES = sorted(CORPUS.glob("*.py"))


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hostile_extra_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extra(module: ModuleType) -> dict[str, Any]:
    make = getattr(module, "make_extra", None)
    extra: dict[str, Any] = make() if make is not None else module.EXTRA
    return extra


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"audit.hostile.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, CapturingTransport]]:
    handler = AuditHandler(transport_factory=CapturingTransport, env_file=None)
    transport = handler.transport
    assert isinstance(transport, CapturingTransport)
    yield _logger(handler), transport
    handler.close()


def test_the_corpus_has_every_kind_of_value() -> None:
    assert len(FILES) >= 18


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_hostile_extra(
    path: Path,
    captured: tuple[logging.Logger, CapturingTransport],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    module = _load(path)
    logger, transport = captured
    repeat: int = getattr(module, "REPEAT", 1)
    try:
        with caplog.at_level(logging.WARNING, "audit_logging"):
            extra = _extra(module)
            for _ in range(repeat):
                logger.info("hostile %s", path.stem, extra=extra)  # must not raise
    finally:
        cleanup = getattr(module, "cleanup", None)
        if cleanup is not None:
            cleanup()
    assert capfd.readouterr().err == ""
    ours = [r for r in caplog.records if r.name.startswith("audit_logging")]
    assert not [r for r in ours if r.exc_info], "a traceback was reported"
    assert not [r for r in ours if "failed to take" in r.getMessage()]
    assert len(transport.bodies) == repeat, [r.getMessage() for r in ours]
    for body in transport.bodies:
        decoded = decode_record(body)
        assert decoded == json.loads(body), decoded
    _check(module.EXPECT, json.loads(transport.bodies[0]), transport.bodies[0], ours)


def _check(
    expect: dict[str, Any], record: dict[str, Any], body: bytes, reports: list[logging.LogRecord]
) -> None:
    for field in expect.get("truncated", []):
        assert field in record["truncated"], record["truncated"]
    for key, value in expect.get("extra", {}).items():
        assert record["extra"][key] == value, record["extra"]
    for key, start in expect.get("extra_startswith", {}).items():
        assert record["extra"][key].startswith(start), record["extra"][key][:200]
    if "reported" in expect:
        messages = [r.getMessage() for r in reports]
        assert any(expect["reported"] in m for m in messages), messages
    if "max_body" in expect:
        assert len(body) <= expect["max_body"]


REAL_BROKER = ["self_referencing_dict", "hundred_thousand_keys", "huge_int", "non_string_keys",
               "lone_surrogates", "mapping_raises"]


@pytest.mark.services
def test_hostile_extras_through_the_real_stream(
    settings: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = AuditHandler(settings=settings)
    logger = _logger(handler)
    try:
        with caplog.at_level(logging.WARNING, "audit_logging"):
            for name in REAL_BROKER:
                logger.info("hostile %s", name, extra=_extra(_load(CORPUS / f"{name}.py")))
            assert handler.flush(timeout=30) == 0
    finally:
        handler.close(timeout=10)
    bodies = asyncio.run(read_stream(settings, settings.rabbitmq_stream_name,
                                     at_least=len(REAL_BROKER)))
    assert len(bodies) == len(REAL_BROKER)
    for _, body in bodies:
        decoded = decode_record(body)
        assert decoded == json.loads(body), decoded
    assert [json.loads(b)["change_message"] for _, b in bodies] == [
        f"hostile {name}" for name in REAL_BROKER]
    assert capfd.readouterr().err == ""
