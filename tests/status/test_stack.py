"""``python -m audit_logging status`` against the real stack: it shows what a real consumer
wrote (stream end, stored offset, lag, archive object, digest, dead letter, index counts) and
a real app's spool, calls a stopped consumer stale once its records wait, and names a service
that is cut while still showing the rest."""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from audit_logging.archive.digest_format import digest_key_re
from audit_logging.archive.layout import parse_key
from audit_logging.handlers import AuditHandler
from audit_logging.search_index import index_for
from audit_logging.settings import Settings
from tests._ports import free_port
from tests._proxy import tcp_proxy
from tests.consumer._helpers import (
    NAME,
    bodies_of,
    make_records,
    publish,
    publish_records,
    stored_offset,
    wait_for_offset,
    wait_until,
)
from tests.consumer.conftest import StartConsumer
from tests.status._status import StatusRun, run_status

pytestmark = [pytest.mark.services]
SPOOLED = 7


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """This test's settings with a one-second flush interval (status's staleness follows it)."""
    return dataclasses.replace(settings, flush_interval=1.0)


@pytest.fixture
def offline_app(quick: Settings) -> Iterator[Path]:
    """A running app whose broker is out of reach: its records wait in its spool folder."""
    with tcp_proxy("127.0.0.1", quick.rabbitmq_stream_port) as proxy:
        proxy.down()
        handler = AuditHandler(settings=dataclasses.replace(
            quick, rabbitmq_stream_port=proxy.port))
        logger = logging.getLogger(f"audit.status-test.{id(handler)}")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            for number in range(SPOOLED):
                logger.info("spooled", extra={"action": "CREATE", "object_id": str(number)})
            handler.flush(timeout=0.5)
            yield quick.spool_dir
        finally:
            handler.close(timeout=1)


def _spooled_bytes(spool_dir: Path) -> int:
    return sum(path.stat().st_size for path in spool_dir.glob("*/*.log"))


def _status(settings: Settings, cwd: Path, *args: str, without: Sequence[str] = (),
            **env: str) -> StatusRun:
    return run_status(settings, "--json", *args, cwd=cwd, without=without, **env)


def test_status_shows_what_a_running_consumer_wrote_then_calls_it_stale_once_stopped(
    quick: Settings, start_consumer: StartConsumer, offline_app: Path, tmp_path: Path
) -> None:
    records = make_records(50)
    publish(quick, [*bodies_of(records), b"not json: a dead letter"])
    consumer = start_consumer(
        "--flush-interval", "1", env={"AUDIT_LOG_DIGEST_INTERVAL": "1"})
    wait_for_offset(quick, 50, 120)
    prefix = quick.s3_prefix

    def settled(run: StatusRun) -> bool:
        if run.returncode != 0:
            return False
        figures = run.figures
        digest = figures["archive"]["digests"][0]
        return (digest["last_offset"] == 50 and figures["archive"]["newest_object"] is not None
                and sum(i["documents"] or 0 for i in figures["index"]["indices"]) == 50
                and figures["archive"]["dead_letters_last_day"]["objects"] == 1)

    run = wait_until("status to show the consumer's work",
                     lambda: _status(quick, tmp_path), settled, 120)
    figures = run.figures
    assert figures["healthy"] is True and figures["problems"] == [], run
    stream = quick.rabbitmq_stream_name
    (end,) = figures["broker"]["streams"]
    assert (end["stream"], end["exists"], end["end_offset"]) == (stream, True, 50)
    (group,) = figures["broker"]["consumers"]
    assert group["name"] == NAME
    assert group["streams"] == [{"stream": stream, "stored_offset": 50, "lag": 0,
                                 "oldest_waiting_offset": None, "oldest_waiting_time": None,
                                 "waited_seconds": None}]
    newest = parse_key(prefix, figures["archive"]["newest_object"]["key"])
    assert newest is not None and (newest.stream, newest.last_offset) == (stream, 49)
    digest = figures["archive"]["digests"][0]
    assert digest_key_re(prefix, stream).fullmatch(digest["key"])
    letters = figures["archive"]["dead_letters_last_day"]
    assert letters["newest"]["key"].startswith(f"{prefix}dead-letter/{stream}-")
    assert letters["complete"] is True
    months = collections.Counter(index_for(quick.opensearch_index_prefix, record["timestamp"])
                                 for record in records)
    assert {i["index"]: i["documents"] for i in figures["index"]["indices"]} == dict(months)
    spool = figures["spool"]
    assert (spool["exists"], spool["records"], spool["bytes"]) == (
        True, SPOOLED, _spooled_bytes(offline_app)), spool
    screen = run_status(quick, cwd=tmp_path)
    assert screen.returncode == 0, screen
    assert stream in screen.stdout and screen.stdout.splitlines()[-1] == "healthy"

    assert consumer.stop() == 0
    publish_records(quick, 5)

    def stale(run: StatusRun) -> bool:
        return run.returncode == 1

    run = wait_until("status to call the stopped consumer stale",
                     lambda: _status(quick, tmp_path, "--stale-after", "2"), stale, 120)
    figures = run.figures
    assert figures["healthy"] is False
    (problem,) = figures["problems"]
    assert problem.startswith(f"consumer '{NAME}' is stale on '{stream}'"), problem
    (end,) = figures["broker"]["streams"]
    (backlog,) = figures["broker"]["consumers"][0]["streams"]
    assert backlog["stored_offset"] == stored_offset(quick, NAME) == 50
    assert backlog["lag"] == end["end_offset"] - 50 >= 5
    # The five were published together after the consumer's last offset-tracking entry.
    assert backlog["oldest_waiting_offset"] == end["end_offset"] - 4
    assert backlog["waited_seconds"] > 2
    screen = run_status(quick, "--stale-after", "2", cwd=tmp_path)
    assert screen.returncode == 1
    assert screen.stdout.splitlines()[-1].startswith(f"UNHEALTHY: consumer '{NAME}' is stale")
    assert "STALE" in screen.stdout


@pytest.mark.parametrize("cut", ["down", "hang"])
def test_opensearch_cut_is_named_and_the_rest_still_shown(
    settings: Settings, tmp_path: Path, cut: str
) -> None:
    publish_records(settings, 3)
    with tcp_proxy(settings.opensearch_host, settings.opensearch_port) as proxy:
        getattr(proxy, cut)()
        run = _status(settings, tmp_path, OPENSEARCH_HOST="127.0.0.1",
                      OPENSEARCH_PORT=str(proxy.port))
    assert run.returncode == 1, run
    figures = run.figures
    assert [p.split(":")[0] for p in figures["problems"]] == ["OpenSearch"], figures["problems"]
    assert figures["index"]["reachable"] is False
    assert f"127.0.0.1:{proxy.port}" in figures["index"]["error"]
    assert figures["broker"]["streams"][0]["end_offset"] == 2
    assert figures["archive"]["reachable"] is True
    assert all(len(line) < 1000 for line in run.stdout.splitlines())


# What an app host lacks: it runs only the capture side, so it has no archive settings.
ARCHIVE_SETTINGS = ("AUDIT_LOG_AWS_S3_BUCKET", "AUDIT_LOG_S3_PREFIX", "AWS_ENDPOINT_URL_S3",
                    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION_NAME")


def test_an_app_host_sees_its_spool_with_only_spool(
    quick: Settings, offline_app: Path, tmp_path: Path
) -> None:
    """No bucket setting, and nothing listens where OpenSearch and RabbitMQ are said to be:
    ``--only spool`` reads the spool alone and is healthy; ``--only spool,index`` reads
    OpenSearch too and names it."""
    closed = str(free_port())
    app_host = {"OPENSEARCH_PORT": closed, "RABBITMQ_STREAM_PORT": closed}
    run = _status(quick, tmp_path, "--only", "spool", without=ARCHIVE_SETTINGS, **app_host)
    assert run.returncode == 0, run
    figures = run.figures
    assert (figures["healthy"], figures["problems"], figures["checked"]) == (True, [], ["spool"])
    assert (figures["broker"], figures["archive"], figures["index"]) == (None, None, None)
    spool = figures["spool"]
    assert (spool["exists"], spool["records"], spool["bytes"]) == (
        True, SPOOLED, _spooled_bytes(offline_app)), spool
    screen = run_status(quick, "--only", "spool", cwd=tmp_path, without=ARCHIVE_SETTINGS,
                        **app_host)
    assert screen.returncode == 0, screen
    lines = screen.stdout.splitlines()
    assert f"Local spool ({offline_app})" in lines
    assert any(line.startswith(f"  {SPOOLED} records, ") for line in lines), screen
    assert "not checked (--only): broker, archive, index" in lines
    assert not [line for line in lines if line.startswith(("Streams", "Archive", "Index"))]
    assert lines[-1] == "healthy"

    run = _status(quick, tmp_path, "--only", "spool,index", without=ARCHIVE_SETTINGS,
                  **app_host)
    assert run.returncode == 1, run
    figures = run.figures
    assert figures["checked"] == ["index", "spool"]
    (problem,) = figures["problems"]
    assert problem.startswith("OpenSearch: ") and f":{closed}" in problem, problem
    assert figures["index"]["reachable"] is False
    assert figures["spool"]["records"] == SPOOLED
    screen = run_status(quick, "--only", "spool", "--only", "index", cwd=tmp_path,
                        without=ARCHIVE_SETTINGS, **app_host)
    assert screen.returncode == 1, screen
    assert screen.stdout.splitlines()[-1].startswith("UNHEALTHY: OpenSearch: ")


def test_bad_usage_and_settings_exit_2_naming_them(settings: Settings, tmp_path: Path) -> None:
    for args, env, named in [
        (["--consumer-name", "no spaces"], {}, "--consumer-name"),
        (["--stale-after", "-1"], {}, "--stale-after"),
        (["--consumer-url", "http://user:pw@host:1"], {}, "--consumer-url"),
        ([], {"AUDIT_LOG_AWS_S3_BUCKET": ""}, "AUDIT_LOG_AWS_S3_BUCKET"),
        ([], {"AUDIT_LOG_FLUSH_INTERVAL": "soon"}, "AUDIT_LOG_FLUSH_INTERVAL"),
        (["--only", "spool,opensearch"], {}, "--only"),
        (["--only", "archive"], {"AUDIT_LOG_AWS_S3_BUCKET": ""}, "AUDIT_LOG_AWS_S3_BUCKET"),
    ]:
        run = run_status(settings, *args, cwd=tmp_path, **env)
        assert run.returncode == 2, (args, env, run)
        assert named in run.stderr and "Traceback" not in run.stderr, run
        assert "pw@" not in run.stderr


def test_a_consumer_group_that_never_stored_an_offset_waits_from_the_first_record(
    settings: Settings, tmp_path: Path
) -> None:
    publish_records(settings, 4)
    run = _status(settings, tmp_path, "--consumer-name", "never-ran", "--stale-after", "3600")
    figures = run.figures
    (backlog,) = figures["broker"]["consumers"][0]["streams"]
    assert figures["broker"]["consumers"][0]["name"] == "never-ran"
    assert (backlog["stored_offset"], backlog["lag"], backlog["oldest_waiting_offset"]) == (
        None, 4, 0)
    assert run.returncode == 0, run


def test_a_missing_stream_is_a_problem(settings: Settings, tmp_path: Path) -> None:
    run = _status(settings, tmp_path)
    assert run.returncode == 1
    assert run.figures["problems"] == [
        f"RabbitMQ: stream '{settings.rabbitmq_stream_name}' does not exist"]


