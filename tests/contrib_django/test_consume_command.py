"""``manage.py consume_audit_logs`` against the real stack: with its stream, index prefix and
archive prefix given only in ``settings.AUDIT_LOGGING``, it indexes and archives what was
published, stops cleanly on SIGTERM or SIGINT (exit 0, the last partial batch flushed, the
offset stored), and exits 2 naming a bad flag or setting; ``--help`` lists every consumer flag."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from audit_logging.consumer.__main__ import build_parser
from audit_logging.settings import Settings
from tests.consumer._helpers import publish_records, stored_offset, wait_for_offset, wait_until
from tests.consumer._sinks import archive_keys, assert_exactly_once, opensearch_count
from tests.contrib_django._manage import (
    SETTINGS_MODULE,
    ManageProcess,
    manage_env,
    run_manage,
    write_settings,
)
from tests.status._status import StatusRun, run_status

pytestmark = [pytest.mark.services]

CONSUMER = "worker-01"
RECORDS = 23
# Given only by AUDIT_LOGGING in these tests: the environment must not hold them.
FROM_DJANGO = ("RABBITMQ_STREAM_NAME", "OPENSEARCH_INDEX_PREFIX", "AUDIT_LOG_S3_PREFIX",
               "AUDIT_LOG_SPOOL_DIR")


def _audit_logging(settings: Settings) -> dict[str, object]:
    return {
        "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
        "OPENSEARCH_INDEX_PREFIX": settings.opensearch_index_prefix,
        "AUDIT_LOG_S3_PREFIX": settings.s3_prefix,
        "AUDIT_LOG_SPOOL_DIR": str(settings.spool_dir),
        # The environment gives 3600 and wins: this one would be exit 2.
        "AUDIT_LOG_FLUSH_INTERVAL": "not a number",
    }


def _same_status(django: StatusRun, plain: StatusRun) -> None:
    """The two status commands judged the same pipeline alike: exit status, problems, and
    the names they read (the Django one from AUDIT_LOGGING)."""
    assert django.returncode == plain.returncode, f"django: {django}\nplain: {plain}"
    mine, theirs = django.figures, plain.figures
    assert mine["healthy"] == theirs["healthy"]
    assert mine["problems"] == theirs["problems"], f"django: {django}\nplain: {plain}"
    for part, key in (("index", "prefix"), ("archive", "prefix"), ("spool", "path")):
        assert mine[part][key] == theirs[part][key]
    assert mine["broker"]["streams"] == theirs["broker"]["streams"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_consume_audit_logs_reads_audit_logging_indexes_archives_and_stops_on_a_signal(
    stack_env: dict[str, str], settings: Settings, tmp_path: Path, stop: signal.Signals
) -> None:
    folder = write_settings(tmp_path / "project", _audit_logging(settings))
    env = manage_env(stack_env, folder, without=FROM_DJANGO, AUDIT_LOG_FLUSH_INTERVAL="3600")
    quick = dataclasses.replace(settings, flush_interval=3600.0)
    status_args = ("audit_logs_status", "--json", "--consumer-name", CONSUMER)

    def statuses() -> tuple[StatusRun, StatusRun]:
        django = run_manage(status_args, env, tmp_path / "status")
        plain = run_status(quick, "--json", "--consumer-name", CONSUMER, cwd=tmp_path / "status")
        return StatusRun(django.returncode, django.stdout, django.stderr), plain

    # No stream yet: both status commands call it unhealthy, alike, naming the stream
    # AUDIT_LOGGING gave.
    before = statuses()
    assert before[0].returncode == 1, before[0]
    _same_status(*before)
    assert f"RabbitMQ: stream {settings.rabbitmq_stream_name!r} does not exist" in (
        before[0].figures["problems"]), before[0]

    records = publish_records(settings, RECORDS)

    consumer = ManageProcess(
        env, ["consume_audit_logs", "--batch-size", "5", "--consumer-name", CONSUMER],
        tmp_path / "consumer",
    ).start()
    try:
        # Four full batches of 5 are archived at once; the last 3 records wait for the flush
        # interval (an hour), once indexed (they are read then).
        wait_for_offset(settings, 19, timeout=120, name=CONSUMER)
        wait_until("every record indexed", lambda: opensearch_count(settings),
                   lambda n: n >= RECORDS, timeout=120)
        assert stored_offset(settings, CONSUMER) == 19, consumer.log()
        consumer.signal(stop)
        assert consumer.wait(90) == 0, consumer.log()
    finally:
        consumer.kill()

    # The signal flushed the last partial batch and stored its offset.
    assert stored_offset(settings, CONSUMER) == RECORDS - 1, consumer.log()
    assert_exactly_once(settings, {record["log_id"] for record in records})
    # --batch-size reached the consumer: at most 5 records per file.
    assert len(archive_keys(settings)) >= RECORDS // 5 + 1, archive_keys(settings)
    assert f"{stop.name}: stopping" in consumer.log()

    after = statuses()
    assert after[0].returncode == 0, after[0]
    _same_status(*after)


@pytest.mark.parametrize(
    ("args", "audit_logging", "named"),
    [
        (["--index-delay", "99"], {}, "--index-delay"),
        (["--from", "yesterday"], {}, "--from"),
        (["--batch-size", "0"], {}, "--batch-size"),
        (["--bogus"], {}, "--bogus"),
        ([], {"AUDIT_LOG_BATCH_SIZE": "many"}, "AUDIT_LOG_BATCH_SIZE"),
        ([], {"AUDIT_LOG_AWS_S3_BUCKET": ""}, "AUDIT_LOG_AWS_S3_BUCKET"),
        ([], {"NOT_A_SETTING": "x"}, "AUDIT_LOGGING['NOT_A_SETTING']"),
    ],
)
def test_a_bad_flag_or_setting_exits_2_naming_it(
    stack_env: dict[str, str], tmp_path: Path, args: list[str],
    audit_logging: dict[str, object], named: str,
) -> None:
    # The settings module and its folder by Django's own --settings and --pythonpath.
    folder = write_settings(tmp_path / "project", audit_logging)
    env = manage_env(stack_env, None, without=tuple(audit_logging))
    done = run_manage(
        ["consume_audit_logs", *args, "--settings", SETTINGS_MODULE, "--pythonpath", str(folder)],
        env, tmp_path / "run",
    )
    assert done.returncode == 2, done
    assert named in done.stderr, done
    # The consumer's own message, naming the command run; AUDIT_LOGGING itself is Django's.
    said = "CommandError: " if named.startswith("AUDIT_LOGGING[") else (
        "manage.py consume_audit_logs: error: ")
    assert said in done.stderr, done


def test_help_lists_every_flag_of_the_consumer_and_djangos_own(tmp_path: Path) -> None:
    done = run_manage(["consume_audit_logs", "--help"], manage_env({}, None), tmp_path)
    assert done.returncode == 0, done
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert {"--flush-interval", "--metrics-port", "--from", "--batch-size"} <= flags
    listed = {
        word.rstrip(",")
        for line in done.stdout.splitlines()
        if line.startswith("  -")
        for word in line.split()
        if word.startswith("-")
    }
    missing = (flags | {"--settings", "--pythonpath"}) - listed
    assert not missing, done.stdout
