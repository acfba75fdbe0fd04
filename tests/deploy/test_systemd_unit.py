"""deploy/systemd/: a unit systemd accepts (systemd-analyze verify, where it is installed), whose
ExecStart the consumer's own parser accepts, that gives the SIGTERM drain time to finish."""

from __future__ import annotations

import configparser
import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from audit_logging.settings import Settings
from tests.deploy._assets import SYSTEMD_ENV, SYSTEMD_UNIT, consumer_args

INSTALLED_PYTHON = "/opt/audit-logging/venv/bin/python"


def _unit() -> configparser.ConfigParser:
    # systemd's syntax, as far as configparser goes: a trailing backslash continues a line and
    # a key may repeat (SystemCallFilter=), which is kept as the last value here.
    text = re.sub(r"\\\n\s*", " ", SYSTEMD_UNIT.read_text())
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _exec_start() -> list[str]:
    return shlex.split(_unit()["Service"]["ExecStart"])


def test_the_unit_is_one_systemd_accepts(tmp_path: Path) -> None:
    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert _exec_start()[0] == INSTALLED_PYTHON
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        # verify wants ExecStart's program to exist: this venv's python stands in for it.
        copy = tmp_path / SYSTEMD_UNIT.name
        copy.write_text(SYSTEMD_UNIT.read_text().replace(INSTALLED_PYTHON, sys.executable))
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(copy)], check=False, capture_output=True, text=True
        )
        # Unknown keys and bad values are only warnings, with the unit's name in them.
        about_ours = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if SYSTEMD_UNIT.name in line
        ]
        assert (result.returncode, about_ours) == (0, [])


def test_execstart_runs_the_consumer_with_flags_it_accepts() -> None:
    argv = _exec_start()
    assert argv[1:3] == ["-m", "audit_logging.consumer"]
    args = consumer_args(argv[3:])
    assert int(args.metrics_port) == 9464
    assert args.consumer_name == "audit-logging-consumer"


def test_sigterm_drains_before_systemd_would_kill() -> None:
    service = _unit()["Service"]
    args = consumer_args(_exec_start()[3:])
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > args.shutdown_timeout
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a bad setting: restarting cannot help


def test_the_unit_is_hardened() -> None:
    service = _unit()["Service"]
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key


def test_the_environment_file_example_sets_only_real_settings() -> None:
    names = {field.metadata["spec"].env for field in dataclasses.fields(Settings)}
    keys = [
        line.split("=", 1)[0]
        for line in SYSTEMD_ENV.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert keys, "no settings"
    assert sorted(set(keys) - names) == []
    commented = re.findall(r"^#([A-Z0-9_]+)=", SYSTEMD_ENV.read_text(), flags=re.MULTILINE)
    assert sorted(set(commented) - names) == []
    assert "AUDIT_LOG_AWS_S3_BUCKET" in keys
