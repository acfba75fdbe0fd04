"""A handler refused at construction leaves nothing behind: no half-built handler that
``logging.shutdown`` trips over at exit, no transport left running."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.handlers import AuditHandler
from audit_logging.publisher import Encode
from audit_logging.settings import Settings

REPO = Path(__file__).resolve().parents[2]

_CASES = {
    "direct": """
        from audit_logging.errors import ConfigurationError
        from audit_logging.handlers import AuditHandler
        try:
            AuditHandler(hash_key="short", env_file=None)
        except ConfigurationError as exc:
            kept = exc  # the traceback keeps the refused handler alive until exit
            print("refused:", exc)
    """,
    "dict_config": """
        import logging.config
        try:
            logging.config.dictConfig({
                "version": 1,
                "handlers": {"audit": {"class": "audit_logging.handlers.AuditHandler",
                                       "hash_key": "short", "env_file": None}},
                "loggers": {"audit": {"handlers": ["audit"], "level": "INFO"}},
            })
        except ValueError as exc:
            kept = exc
            print("refused:", exc.__cause__)
    """,
    "configure": """
        import audit_logging
        try:
            audit_logging.configure(hash_key="short", env_file=None)
        except audit_logging.ConfigurationError as exc:
            kept = exc
            print("refused:", exc)
    """,
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_refused_settings_leave_nothing_for_logging_shutdown(case: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CASES[case])],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "AUDIT_LOG_HASH_KEY" in done.stdout
    assert "short" not in done.stdout  # the value of a secret is never echoed
    assert "AttributeError" not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr == ""


class _Recording:
    made: list[_Recording] = []  # noqa: RUF012 - the test reads what was made

    def __init__(self, settings: Settings, encode: Encode) -> None:
        self.closed = False
        _Recording.made.append(self)

    def submit(self, item: Any) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0

    def close(self, timeout: float) -> int:
        self.closed = True
        return 0

    def stats(self) -> dict[str, int]:
        return {}


def test_a_bad_level_closes_the_transport_it_made() -> None:
    _Recording.made.clear()
    with pytest.raises(ValueError, match="BOGUS"):
        AuditHandler("BOGUS", transport_factory=_Recording, env_file=None)
    (transport,) = _Recording.made
    assert transport.closed


def test_refused_settings_make_no_transport() -> None:
    _Recording.made.clear()
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_HASH_KEY"):
        AuditHandler(transport_factory=_Recording, hash_key="short", env_file=None)
    assert _Recording.made == []
