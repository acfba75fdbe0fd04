"""``manage.py check`` in a subprocess over the test project, misconfigured one way per
case (tests/django_project/settings_djcore_checks.py): each misconfiguration is reported
with its id, a message naming the setting and a hint; the clean project reports nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.contrib_django._settings_process import manage

SETTINGS = "tests.django_project.settings_djcore_checks"

CASES = {
    # case: (ids reported, words the message must hold)
    "no_hash_key": (["E001"], ["AUDIT_LOG_HASH_KEY", "AUDIT_LOG_SESSION_KEY_MODE"]),
    "no_handler": (["E002"], ["'audit' logger", "no handler at all"]),
    "disable_existing_loggers": (["W003"], ["'audit'", "'audit_logging'",
                                            "disable_existing_loggers"]),
    "propagate": (["W004"], ["'audit' logger propagates", "StreamHandler"]),
    "proxy_mismatch": (["W005"], ["USE_X_FORWARDED_HOST", "SECURE_PROXY_SSL_HEADER",
                                  "AUDIT_LOGGING['TRUSTED_PROXIES']"]),
    "trust_everyone": (["W006"], ["AUDIT_LOGGING['TRUSTED_PROXIES'] trusts every address"]),
    "middleware_order": (["W007", "W007"], ["SessionMiddleware", "AuthenticationMiddleware"]),
    "no_middleware": (["W008"], ["AuditMiddleware is not in MIDDLEWARE"]),
}


def run_check(case: str, tmp_path: Path) -> tuple[int, str]:
    done = manage("check", settings=SETTINGS, tmp_path=tmp_path,
                  env={"DJCORE_CHECK_CASE": case})
    return done.returncode, done.stdout + done.stderr


def test_a_clean_project_reports_nothing(tmp_path: Path) -> None:
    code, output = run_check("clean", tmp_path)
    assert code == 0, output
    assert "System check identified no issues" in output
    assert "audit_logging." not in output


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_misconfiguration_is_reported(case: str, tmp_path: Path) -> None:
    ids, words = CASES[case]
    code, output = run_check(case, tmp_path)
    found = re.findall(r"\(audit_logging\.([EW]\d{3})\)", output)
    assert found == ids, output
    # Errors fail the check (exit 1); warnings alone do not.
    assert code == (1 if any(i.startswith("E") for i in ids) else 0), output
    for word in words:
        assert word in output, (word, output)
    assert output.count("HINT:") == len(ids), output
