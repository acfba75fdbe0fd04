"""``status --only PART[,PART...]``: which parts are asked, and how the parts not asked stay
out of the verdict, the screen and the JSON (figures made by hand; no service is asked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.status.command import main, parse_parts
from audit_logging.status.figures import (
    PARTS,
    Archive,
    Broker,
    Index,
    Readiness,
    Spool,
    Status,
    StreamEnd,
    as_json,
    problems,
)
from audit_logging.status.screen import render

NOW = 1_800_000_000.0
REPO = Path(__file__).resolve().parents[2]


def _failing(**parts: object) -> Status:
    """Every part broken, then those given replaced (None: not checked)."""
    status = Status(
        checked_at=NOW,
        stale_after=150.0,
        broker=Broker(reachable=True, streams=[StreamEnd("audit", exists=False)]),
        readiness=[],
        archive=Archive("bucket", "p/", error="s3://bucket/p/: HTTP 403 AccessDenied: no"),
        index=Index("audit-logs", error="http://os:9200: ConnectionError: down"),
        spool=Spool("/var/spool/audit", exists=True, records=3, bytes=900),
    )
    for name, value in parts.items():
        setattr(status, name, value)
    status.problems = problems(status)
    return status


@pytest.mark.parametrize(("values", "parts"), [
    (None, PARTS),
    ([], PARTS),
    (["spool"], ("spool",)),
    (["spool,index"], ("index", "spool")),
    (["index", "spool,broker", "spool"], ("broker", "index", "spool")),
    ([" archive , spool"], ("archive", "spool")),
])
def test_only_takes_parts_repeated_or_comma_separated_in_the_screen_order(
    values: list[str] | None, parts: tuple[str, ...]
) -> None:
    assert parse_parts(values) == parts


@pytest.mark.parametrize("value", ["s3", "spool,", "", "Spool", "spool;index", "x" * 500,
                                   "consumers\n"])
def test_a_part_that_is_not_one_is_refused_naming_only_and_the_value(value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_parts(["spool", value])
    message = str(raised.value)
    assert "--only" in message and "broker, archive, index, spool" in message
    assert len(message) < 200 and "\n" not in message
    assert value.strip()[:40] in message


def test_parts_not_checked_are_not_judged() -> None:
    everything = _failing()
    assert [p.split(":")[0] for p in everything.problems] == ["RabbitMQ", "S3", "OpenSearch"]
    app_host = _failing(broker=None, archive=None, index=None)
    assert app_host.checked == ["spool"]
    assert app_host.problems == [] and app_host.healthy
    assert _failing(broker=None, archive=None).problems == [
        "OpenSearch: http://os:9200: ConnectionError: down"]


def test_consumer_urls_are_judged_whatever_the_parts() -> None:
    status = _failing(broker=None, archive=None, index=None,
                      readiness=[Readiness("http://c1:9108", error="unreachable: refused")])
    assert status.problems == ["consumer at http://c1:9108: unreachable: refused"]
    assert "Consumer processes (/readyz)" in render(status)


def test_the_screen_shows_only_the_parts_checked_and_names_the_others() -> None:
    screen = render(_failing(broker=None, archive=None, index=None))
    assert screen.splitlines() == [
        "audit_logging status at 2027-01-15T08:00:00Z",
        "",
        "Local spool (/var/spool/audit)",
        "  3 records, 900 B waiting for the broker in 0 folders",
        "",
        "not checked (--only): broker, archive, index",
        "",
        "healthy",
    ]
    full = render(_failing())
    assert "not checked" not in full
    for heading in ("Streams (RabbitMQ)", "Consumers", "Consumer processes (/readyz)",
                    "Archive (s3://bucket/p/)", "Index (OpenSearch", "Local spool"):
        assert heading in full


def test_the_json_has_null_for_the_parts_not_checked_and_lists_those_checked() -> None:
    document = json.loads(json.dumps(as_json(_failing(broker=None, archive=None))))
    assert document["checked"] == ["index", "spool"]
    assert (document["broker"], document["archive"]) == (None, None)
    assert document["index"]["error"] == "http://os:9200: ConnectionError: down"
    assert document["spool"]["records"] == 3
    assert document["consumer_urls"] == []
    full = as_json(_failing())
    assert full["checked"] == list(PARTS)
    assert all(full[part] is not None for part in PARTS)


def test_a_bad_part_exits_2_naming_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--only", "spool,opensearch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("status: ") and "--only" in err and "'opensearch'" in err


def test_an_app_host_needs_no_bucket_and_loads_no_archive_or_index_client(
    tmp_path: Path,
) -> None:
    """--only spool with no S3 or OpenSearch setting at all: neither boto3 nor opensearch-py
    is even imported, so a producer-only install can run it."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AUDIT_LOG_", "AWS_", "OPENSEARCH_", "RABBITMQ_"))}
    env.update({"AUDIT_LOG_SPOOL_DIR": str(tmp_path / "spool"), "PYTHONPATH": str(REPO)})
    script = ("import sys; from audit_logging.status.command import main; "
              "code = main(['--only', 'spool', '--json']); "
              "print(sorted(m for m in ('boto3', 'opensearchpy') if m in sys.modules), "
              "file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]", done.stderr
    document = json.loads(done.stdout)
    assert document["checked"] == ["spool"] and document["healthy"] is True
    assert document["spool"] == {"path": str(tmp_path / "spool"), "exists": False, "records": 0,
                                 "bytes": 0, "folders": [], "error": None}
