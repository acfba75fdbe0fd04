"""The management commands' parsers: the library's own options (the same Action objects,
given back to the library's parser unchanged), the README's commands parse, and
``audit_logs_status`` exits 2 naming a bad flag or setting as ``python -m audit_logging
status`` does."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import BaseCommand

from audit_logging.consumer.__main__ import build_parser
from audit_logging.contrib.django.management.commands import audit_logs_status, consume_audit_logs
from audit_logging.contrib.django.management.forwarding import library_argv
from audit_logging.status.command import parser as status_parser
from tests.contrib_django._manage import SETTINGS_MODULE, manage_env, run_manage, write_settings

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS: dict[str, tuple[type[BaseCommand], argparse.ArgumentParser]] = {
    "consume_audit_logs": (consume_audit_logs.Command, build_parser()),
    "audit_logs_status": (audit_logs_status.Command, status_parser()),
}


def _django_parser(name: str) -> argparse.ArgumentParser:
    return COMMANDS[name][0]().create_parser("manage.py", name)


def _round_trip(name: str, args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the library's parser makes of ``args`` directly, and of what the Django command
    gives it after parsing them itself."""
    library = COMMANDS[name][1]
    options = vars(_django_parser(name).parse_args(args))
    return vars(library.parse_args(args)), vars(library.parse_args(library_argv(library, options)))


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("consume_audit_logs", []),
        ("consume_audit_logs", ["--batch-size", "500", "--consumer-name", "worker-01"]),
        (
            "consume_audit_logs",
            ["--flush-interval", "2.5", "--from", "2026-01-01T00:00:00Z", "--index-delay", "0.3",
             "--shutdown-timeout", "12", "--verify-every", "1h", "--metrics-port", "9464",
             "--metrics-host", "0.0.0.0", "--log-level", "DEBUG"],
        ),
        # A value that starts with "-" stays a value.
        ("consume_audit_logs", ["--consumer-name=-odd", "--from=-5"]),
        ("audit_logs_status", []),
        (
            "audit_logs_status",
            ["--json", "--only", "broker,index", "--only", "spool", "--consumer-name", "a",
             "--consumer-name", "b", "--consumer-url", "http://c:9464", "--stale-after", "90"],
        ),
    ],
)
def test_the_library_gets_the_options_it_would_have_parsed(name: str, args: list[str]) -> None:
    direct, forwarded = _round_trip(name, args)
    assert forwarded == direct


def test_djangos_options_stay_djangos() -> None:
    options = vars(_django_parser("consume_audit_logs").parse_args(
        ["--settings", "x.settings", "--pythonpath", "/srv", "--traceback", "-v", "2"]))
    assert options["settings"] == "x.settings" and options["pythonpath"] == "/srv"
    assert library_argv(build_parser(), options) == []


def test_the_readmes_django_commands_are_the_real_ones() -> None:
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()
             if line.strip().startswith("python manage.py ")]
    assert len(lines) >= 2, lines
    seen = {}
    for line in lines:
        _, _, name, *args = shlex.split(line)
        assert name in COMMANDS, line
        seen[name] = vars(_django_parser(name).parse_args(args))
    assert set(seen) == set(COMMANDS)
    consume = seen["consume_audit_logs"]
    assert (consume["batch_size"], consume["consumer_name"]) == ("500", "worker-01")


@pytest.mark.parametrize(
    ("args", "audit_logging", "named"),
    [
        (["--only", "nope"], {}, "--only"),
        (["--stale-after", "-1"], {}, "--stale-after"),
        (["--consumer-name", "bad name!"], {}, "bad name!"),
        (["--only", "archive"], {"AUDIT_LOG_AWS_S3_BUCKET": ""}, "AUDIT_LOG_AWS_S3_BUCKET"),
        (["--only", "spool"], {"AUDIT_LOG_FLUSH_INTERVAL": "soon"}, "AUDIT_LOG_FLUSH_INTERVAL"),
        (["--only", "spool"], {"NOT_A_SETTING": "x"}, "AUDIT_LOGGING['NOT_A_SETTING']"),
    ],
)
def test_audit_logs_status_exits_2_naming_a_bad_flag_or_setting(
    stack_env: dict[str, str], tmp_path: Path, args: list[str],
    audit_logging: dict[str, object], named: str,
) -> None:
    folder = write_settings(tmp_path / "project", audit_logging)
    env = manage_env(stack_env, None, without=tuple(audit_logging))
    done = run_manage(
        ["audit_logs_status", *args, "--settings", SETTINGS_MODULE, "--pythonpath", str(folder)],
        env, tmp_path / "run",
    )
    assert done.returncode == 2, done
    assert named in done.stderr, done


def test_call_command_gets_status_output_and_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, ``call_command(..., stdout=...)`` receives what status prints, and a bad
    option given as a keyword ends in SystemExit(2) with the message on ``stderr``."""
    import io
    import json

    from django.core.management import call_command

    from tests.django_project.bootstrap import ensure_django

    ensure_django()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIT_LOG_SPOOL_DIR", str(tmp_path / "spool"))
    out = io.StringIO()
    call_command("audit_logs_status", "--only", "spool", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["healthy"] is True and figures["checked"] == ["spool"]
    assert figures["spool"]["path"] == str(tmp_path / "spool")

    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("audit_logs_status", only=["nope"], stdout=io.StringIO(), stderr=err)
    assert exited.value.code == 2
    assert "--only" in err.getvalue() and "'nope'" in err.getvalue()
