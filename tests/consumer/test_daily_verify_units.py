"""``--verify-every`` without services: the duration and its hostile values, the day a run
checks, the schedule, what the check's process is given of the settings, and the line."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from audit_logging.consumer.__main__ import main
from audit_logging.consumer.daily_verify import (
    MINIMUM_EVERY,
    checked_day,
    next_run,
    parse_every,
    settle_delay,
    summary,
    verify_environ,
)
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60", 60.0),
        ("3600", 3600.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("24h", 86_400.0),
        ("1d", 86_400.0),
        ("1.5h", 5400.0),
        (" 2h ", 7200.0),
        ("7d", 7 * 86_400.0),
    ],
)
def test_durations_in_seconds_or_with_a_unit(text: str, seconds: float) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "59", "59s", "0", "0.5m", "-60", "-1h", "+60", "1e309", "1e3", "nan", "NaN",
        "inf", "-inf", "8d", "169h", "99999999999", "9" * 400, "1h30m", "1 h", "1H", "1w",
        "h", "1.h", ".5h", "0x100", "6\n0", "60\x00",
        "\u0663\u0660\u0660\u0660",  # Arabic-Indic digits
        "\uff16\uff10m",  # full-width digits
        "1_000", "1,000", "3600.0000001",
    ],
)
def test_hostile_or_out_of_range_durations_are_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_every(text)
    message = str(caught.value)
    assert message.startswith("Setting --verify-every: ")
    assert "got '" in message
    assert "\n" not in message and "\x00" not in message
    assert len(message) < 300


def test_the_minimum_is_a_minute_unless_a_caller_lowers_it() -> None:
    assert MINIMUM_EVERY == 60.0
    assert parse_every("1", minimum=0.5) == 1.0
    with pytest.raises(ConfigurationError, match="from 60 seconds"):
        parse_every("1")


@pytest.mark.parametrize("value", ["59", "abc", "1e309", "nan", "-5", "\u0663\u0660m"])
def test_the_command_line_exits_2_naming_the_option_and_the_value(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"AUDIT_LOG_AWS_S3_BUCKET": "bucket"}
    assert main(["--verify-every", value], environ) == 2
    err = capsys.readouterr().err
    assert "--verify-every" in err
    assert parse_escaped(value) in err


def parse_escaped(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii")


def test_the_day_checked_is_the_last_one_over_for_the_settling_delay() -> None:
    settle = settle_delay(60.0)
    assert settle == 360.0
    at = dt.datetime(2026, 11, 30, 0, 6, tzinfo=dt.UTC)
    assert checked_day(at, settle) == dt.date(2026, 11, 29)
    # Six minutes after midnight minus a second, 29 November may still be written.
    assert checked_day(at - dt.timedelta(seconds=1), settle) == dt.date(2026, 11, 28)
    assert checked_day(dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC), settle) == dt.date(
        2026, 11, 29
    )
    # A time given in another zone is the same moment.
    paris = dt.timezone(dt.timedelta(hours=1))
    assert checked_day(dt.datetime(2026, 11, 30, 1, 10, tzinfo=paris), settle) == dt.date(
        2026, 11, 29
    )


def test_runs_are_at_fixed_times_whatever_the_start() -> None:
    midnight = dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp()
    day, settle = 86_400.0, 360.0
    # 24h: every day at 00:06 UTC, whether started just before or long after.
    assert next_run(midnight, day, settle) == midnight + 360
    assert next_run(midnight + 360, day, settle) == midnight + day + 360
    assert next_run(midnight + 50_000, day, settle) == midnight + day + 360
    # 1h: six minutes past each hour.
    assert next_run(midnight + 3600 + 1, 3600.0, settle) == midnight + 3600 + 360
    assert next_run(midnight + 3960, 3600.0, settle) == midnight + 2 * 3600 + 360
    # Longer settling than the interval: still one slot per interval.
    assert next_run(midnight + 10, 60.0, settle) == midnight + 60


def test_the_check_gets_the_settings_it_reads_and_no_other_secret() -> None:
    settings = Settings.load(
        environ={
            "OPENSEARCH_HOST": "search.internal",
            "OPENSEARCH_PORT": "9201",
            "OPENSEARCH_USERNAME": "reader",
            "OPENSEARCH_PASSWORD": "os-secret",
            "OPENSEARCH_USE_SSL": "true",
            "OPENSEARCH_INDEX_PREFIX": "audit-x",
            "AUDIT_LOG_AWS_S3_BUCKET": "archive-bucket",
            "AUDIT_LOG_S3_PREFIX": "logs/",
            "AWS_ACCESS_KEY_ID": "AKIA123",
            "AWS_SECRET_ACCESS_KEY": "aws-secret",
            "AWS_ENDPOINT_URL_S3": "http://s3.internal:9000",
            "AUDIT_LOG_RETENTION_MONTHS": "3",
            "RABBITMQ_STREAM_PASSWORD": "broker-secret",
            "AUDIT_LOG_HASH_KEY": "hash-key-of-16-chars",
            "AUDIT_LOG_API_TOKENS": "api-token",
        },
        env_file=None,
        opensearch_port=9202,  # a keyword argument wins, and the check sees it
    )
    base = {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/src",
        "RABBITMQ_STREAM_PASSWORD": "broker-secret",
        "OPENSEARCH_HOST": "elsewhere",
        "AUDIT_LOG_API_TOKENS": "api-token",
    }
    env = verify_environ(settings, base)
    assert env["PATH"] == "/usr/bin" and env["PYTHONPATH"] == "/src"
    for secret in ("broker-secret", "hash-key-of-16-chars", "api-token"):
        assert secret not in env.values()
    again = Settings.load(environ=env, env_file=None)
    for field in (
        "opensearch_host", "opensearch_port", "opensearch_username", "opensearch_password",
        "opensearch_use_ssl", "opensearch_verify_certs", "opensearch_index_prefix",
        "s3_bucket", "s3_prefix", "aws_access_key_id", "aws_secret_access_key",
        "aws_endpoint_url_s3", "retention_months",
    ):
        assert getattr(again, field) == getattr(settings, field), field
    assert again.opensearch_port == 9202
    # A setting that is not set stays unset in the check, whatever a .env file there says.
    bare = verify_environ(Settings.load(environ={}, env_file=None), {})
    assert bare["OPENSEARCH_USERNAME"] == "" and bare["AWS_SECRET_ACCESS_KEY"] == ""


def answer(**day: Any) -> dict[str, Any]:
    found = {"count": 0, "sample": []}
    checked = {
        "day": "2026-11-29", "files": 3, "archived": 120, "indexed": 120, "index_checked": True,
        "missing_in_index": found, "missing_in_archive": found, "duplicates": found,
        "offset_problems": found, "unreadable_files": found, "repaired": None, "agree": True,
    } | day
    return {"agree": checked["agree"], "days": [checked]}


def test_an_agreeing_day_is_one_info_line() -> None:
    level, line = summary(dt.date(2026, 11, 29), answer(), 1.25)
    assert level == logging.INFO
    assert line == (
        "verify 2026-11-29: the index and the archive agree: 120 records in the archive "
        "(3 files), 120 in the index; missing in index 0, missing in archive 0, duplicates 0, "
        "offset problems 0, unreadable files 0 (1.2 s)"
    )


def test_a_differing_day_is_one_warning_line_with_counts_samples_and_the_repair() -> None:
    ids = [f"id-{n}" for n in range(10)]
    level, line = summary(
        dt.date(2026, 11, 29),
        answer(
            agree=False, files=1, indexed=117,
            missing_in_index={"count": 12, "sample": ids},
            missing_in_archive={"count": 1, "sample": ["extra-1"]},
            offset_problems={"count": 1, "sample": ["file x claims offsets 1-9\nforged"]},
        ),
        0.5,
    )
    assert level == logging.WARNING
    assert "the index and the archive differ: 120 records in the archive (1 file), 117 in " in line
    assert "missing in index 12 (id-0, id-1, id-2, ...)" in line
    assert "missing in archive 1 (extra-1)" in line
    assert "duplicates 0, offset problems 1, unreadable files 0 (0.5 s)" in line
    assert "forged" not in line
    assert "--since 2026-11-29 --until 2026-11-29" in line and "--repair" in line


def test_a_day_past_index_retention_says_the_index_was_not_checked() -> None:
    level, line = summary(dt.date(2020, 1, 1), answer(indexed=None, index_checked=False), 0.1)
    assert level == logging.INFO
    assert "the index not checked" in line


def test_unreadable_files_are_counted_in_the_warning_line_never_named() -> None:
    key = "audit-logs/year=2026/month=11/day=29/s-" + "0" * 20 + "-" + "0" * 19 + "9.parquet"
    level, line = summary(
        dt.date(2026, 11, 29),
        answer(agree=False, archived=117,
               unreadable_files={"count": 2, "sample": [
                   {"key": key, "reason": "ArrowInvalid: magic bytes not found\nforged"},
                   {"key": key + "x", "reason": "OSError: thrift"}]}),
        0.5,
    )
    assert level == logging.WARNING
    assert "offset problems 0, unreadable files 2 (0.5 s)" in line
    assert "no repair reads them" in line
    assert key not in line and "forged" not in line and "\n" not in line


def test_an_answer_without_the_unreadable_files_key_still_makes_its_line() -> None:
    older = answer()
    del older["days"][0]["unreadable_files"]
    level, line = summary(dt.date(2026, 11, 29), older, 1.25)
    assert level == logging.INFO
    assert line.endswith("duplicates 0, offset problems 0 (1.2 s)")
