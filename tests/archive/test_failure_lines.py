"""A service failing during an archive command is one line that names it (the clients' own
messages often do not: "Connection refused" from where?), and never a credential."""

from __future__ import annotations

import datetime as dt

import pytest

from audit_logging.archive import cli
from audit_logging.settings import Settings
from tests.archive._archive import archive_command, command_env

pytestmark = pytest.mark.services

DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("OPENSEARCH_PORT", "9", "OpenSearch (http://{host}:9): "),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9", "S3 (s3://{bucket}/{prefix}): "),
    ],
)
def test_the_failure_line_names_the_service(
    settings: Settings, variable: str, value: str, named: str
) -> None:
    env = command_env(settings) | {variable: value}
    done = archive_command(settings, "verify", "--since", DAY, "--until", DAY, env=env)
    assert done.returncode == cli.EXIT_FAILED, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("verify: failed: ")]
    assert len(failed) == 1, done.stderr
    expected = named.format(host=settings.opensearch_host, bucket=settings.s3_bucket,
                            prefix=settings.s3_prefix)
    assert failed[0].startswith(f"verify: failed: {expected}"), failed[0]
    secret = settings.aws_secret_access_key
    assert secret is None or secret.get() not in done.stderr + done.stdout
