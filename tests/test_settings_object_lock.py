"""AUDIT_LOG_OBJECT_LOCK_DAYS and AUDIT_LOG_OBJECT_LOCK_MODE: a retention that cannot be
shortened once written (COMPLIANCE) must come from a value that says exactly what it means."""

from __future__ import annotations

from typing import Any

import pytest

from audit_logging.consumer.object_lock import ObjectLock
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings


def load(environ: dict[str, str] | None = None, **keywords: Any) -> Settings:
    return Settings.load(environ=environ or {}, env_file=None, **keywords)


def test_unset_means_no_retention_and_governance_is_the_default_mode() -> None:
    settings = load()
    assert settings.object_lock_days is None
    assert settings.object_lock_mode == "GOVERNANCE"
    assert ObjectLock.from_settings(settings) is None


def test_days_and_mode_make_the_lock() -> None:
    settings = load(
        {"AUDIT_LOG_OBJECT_LOCK_DAYS": "30", "AUDIT_LOG_OBJECT_LOCK_MODE": "COMPLIANCE"}
    )
    assert ObjectLock.from_settings(settings) == ObjectLock("COMPLIANCE", 30)
    # The bounds are taken as they are.
    assert load({"AUDIT_LOG_OBJECT_LOCK_DAYS": "1"}).object_lock_days == 1
    assert load({"AUDIT_LOG_OBJECT_LOCK_DAYS": "36500"}).object_lock_days == 36_500
    assert load(object_lock_days=7).object_lock_days == 7
    assert load({"AUDIT_LOG_OBJECT_LOCK_MODE": "governance"}).object_lock_mode == "GOVERNANCE"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "must be from 1 to 36500, got 0"),
        ("-1", "must be from 1 to 36500, got -1"),
        ("36501", "must be from 1 to 36500, got 36501"),
        ("abc", "must be an integer, got 'abc'"),
        ("1e3", "must be an integer, got '1e3'"),
        ("1.5", "must be an integer, got '1.5'"),
        ("30d", "must be an integer, got '30d'"),
        ("0x10", "must be an integer, got '0x10'"),
        ("7\n8", "must be an integer, got '7\\n8'"),
    ],
)
def test_bad_days_are_refused_naming_the_setting_and_the_value(value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load({"AUDIT_LOG_OBJECT_LOCK_DAYS": value})
    assert info.value.setting == "AUDIT_LOG_OBJECT_LOCK_DAYS"
    assert f"Setting AUDIT_LOG_OBJECT_LOCK_DAYS: {expected}" == str(info.value)


@pytest.mark.parametrize("value", [True, 7.0, "7 days"])
def test_bad_days_keywords_are_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_OBJECT_LOCK_DAYS: must be an integer"):
        load(object_lock_days=value)


@pytest.mark.parametrize("value", ["LEGAL_HOLD", "GOVERNANCE,COMPLIANCE", "none", "x'; rm -rf /"])
def test_a_bad_mode_is_refused_naming_the_choices(value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load({"AUDIT_LOG_OBJECT_LOCK_MODE": value, "AUDIT_LOG_OBJECT_LOCK_DAYS": "1"})
    assert info.value.setting == "AUDIT_LOG_OBJECT_LOCK_MODE"
    assert "must be one of GOVERNANCE, COMPLIANCE, got " in str(info.value)


def test_a_mode_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_OBJECT_LOCK_MODE: must be a string"):
        load(object_lock_mode=1)
