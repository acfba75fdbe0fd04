"""What the app does when Django starts, in subprocesses (Django's settings are once per
process): one open AuditHandler with the project's settings whatever LOGGING says, the
library's loggers enabled, a bad setting refused at start with a message naming it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from audit_logging.settings import Settings
from tests.contrib_django._settings_process import manage

SETTINGS = "tests.django_project.settings_djcore_checks"
PROBE = """
import json, logging
audit = logging.getLogger("audit")
print("PROBE" + json.dumps({
    "handlers": [[type(h).__name__, h.settings.source, h._closed] for h in audit.handlers],
    "disabled": sorted(n for n, lg in logging.Logger.manager.loggerDict.items()
                       if isinstance(lg, logging.Logger) and lg.disabled),
    "level": audit.getEffectiveLevel(),
}))
"""


def probe(case: str, tmp_path: Path, **env: str) -> tuple[dict[str, Any], str]:
    done = manage("shell", "-c", PROBE, settings=SETTINGS, tmp_path=tmp_path,
                  env={"DJCORE_CHECK_CASE": case, **env})
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("PROBE")]
    return json.loads(line[5:]), done.stderr


@pytest.mark.parametrize("case", ["clean", "configured_before_setup", "handler_in_logging",
                                  "disable_existing_loggers"])
def test_one_open_handler_with_the_projects_settings(case: str, tmp_path: Path) -> None:
    state, stderr = probe(case, tmp_path)
    # The project's AUDIT_LOGGING names the source; a handler made before Django started
    # (closed by dictConfig) or declared in LOGGING with other settings is replaced.
    assert state["handlers"] == [["AuditHandler", "django-test-project", False]], stderr
    assert state["level"] <= 20
    assert not [n for n in state["disabled"] if n == "audit" or n.startswith("audit_logging")]
    if case == "handler_in_logging":
        assert "has other settings than the Django project's" in stderr
    if case == "configured_before_setup":
        # dictConfig had closed it: replaced for that reason, without a warning.
        assert "has other settings" not in stderr
    if case == "disable_existing_loggers":
        # Said at start, on the library's logger (which LOGGING had silenced).
        assert "'audit'" in stderr and "disable_existing_loggers" in stderr


def test_the_environment_wins_over_audit_logging(tmp_path: Path) -> None:
    state, _ = probe("clean", tmp_path, AUDIT_LOG_SOURCE="from-the-environment")
    assert state["handlers"] == [["AuditHandler", "from-the-environment", False]]


@pytest.mark.parametrize(
    ("case", "env", "named"),
    [
        ("bad_library_value", {}, "Setting AUDIT_LOG_BATCH_SIZE: must be an integer, got 'lots' "
                                  "(from settings.AUDIT_LOGGING)"),
        ("clean", {"AUDIT_LOG_BATCH_SIZE": "-3"}, "Setting AUDIT_LOG_BATCH_SIZE:"),
        ("bad_proxy", {}, "Setting AUDIT_LOGGING['TRUSTED_PROXIES']: 'proxy.internal' is not "
                          "an IP address or network"),
        ("unknown_key", {}, "Setting AUDIT_LOGGING['RABBITMQ_STREAM_HOSTNAME']: is not a "
                            "setting of audit_logging"),
        ("not_a_dict", {}, "Setting AUDIT_LOGGING: must be a dict of settings, got a list"),
    ],
)
def test_a_bad_setting_fails_at_start_naming_it(
    case: str, env: dict[str, str], named: str, tmp_path: Path
) -> None:
    done = manage("check", settings=SETTINGS, tmp_path=tmp_path,
                  env={"DJCORE_CHECK_CASE": case, **env})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    # Django's ImproperlyConfigured, and the library's ConfigurationError too.
    assert last.startswith("audit_logging.contrib.django.apps.AuditLoggingImproperlyConfigured: ")
    assert named in last, last
    if env:
        assert "(from the environment)" in last


def test_the_error_is_both_improperly_configured_and_a_configuration_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from audit_logging.contrib.django.apps import AuditLoggingImproperlyConfigured
    from audit_logging.errors import ConfigurationError

    error = AuditLoggingImproperlyConfigured(ConfigurationError("AUDIT_LOG_X", "is bad"))
    assert isinstance(error, ImproperlyConfigured) and isinstance(error, ConfigurationError)
    assert (str(error), error.setting) == ("Setting AUDIT_LOG_X: is bad", "AUDIT_LOG_X")


def test_a_closed_handler_with_the_same_settings_is_replaced(
    django_db: None, settings: Settings
) -> None:
    """A closed handler sends nothing, whatever its settings (configure() alone compares
    only the settings)."""
    import audit_logging
    from audit_logging.contrib.django.apps import configure_capture

    audit = logging.getLogger("audit")
    saved = list(audit.handlers)
    audit.handlers[:] = []
    try:
        closed = audit_logging.configure(settings=settings)
        closed.close()  # as dictConfig closes every handler it finds
        fresh = configure_capture(settings)
        assert fresh is not closed
        assert audit.handlers == [fresh]
    finally:
        audit_logging.shutdown(timeout=5)
        audit.handlers[:] = saved
