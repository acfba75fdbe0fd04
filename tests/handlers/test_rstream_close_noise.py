"""rstream's traceback for a close cut short at shutdown never reaches the app's stderr;
its other errors still do."""

from __future__ import annotations

import asyncio
import logging

import pytest

from audit_logging._rstream_compat import new_producer
from audit_logging.settings import Settings


def _log_from_rstream(error: BaseException) -> None:
    try:
        raise error
    except BaseException:  # as rstream's Producer.close does
        logging.getLogger("rstream.producer").exception(
            "exception in delete_publisher in Producer.close"
        )


def test_a_cancelled_close_is_kept_off_the_apps_log(caplog: pytest.LogCaptureFixture) -> None:
    new_producer(Settings.load(env_file=None), "test-close-noise")
    caplog.set_level(logging.DEBUG)
    _log_from_rstream(asyncio.CancelledError())
    assert not [r for r in caplog.records if r.name == "rstream.producer"]
    assert any("cancelled at shutdown" in r.getMessage() for r in caplog.records)
    _log_from_rstream(ConnectionResetError("peer reset"))
    shown = [r for r in caplog.records if r.name == "rstream.producer"]
    assert len(shown) == 1 and shown[0].levelno == logging.ERROR
