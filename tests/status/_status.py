"""Run ``python -m audit_logging status`` as an operator would, against this test's stream,
indices, archive prefix and spool folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_logging.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def status_env(settings: Settings, without: Sequence[str] = (), **extra: str) -> dict[str, str]:
    """The environment of an operator's shell holding ``settings``, then ``extra``, less the
    variables named in ``without``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AUDIT_LOG_", "AWS_", "OPENSEARCH_", "RABBITMQ_"))}
    secret = settings.aws_secret_access_key
    env.update({
        "RABBITMQ_STREAM_HOST": settings.rabbitmq_stream_host,
        "RABBITMQ_STREAM_PORT": str(settings.rabbitmq_stream_port),
        "RABBITMQ_STREAM_USER": settings.rabbitmq_stream_user,
        "RABBITMQ_STREAM_PASSWORD": settings.rabbitmq_stream_password.get(),
        "RABBITMQ_STREAM_VHOST": settings.rabbitmq_stream_vhost,
        "RABBITMQ_STREAM_NAME": settings.rabbitmq_stream_name,
        "AUDIT_LOG_STREAM_PARTITIONS": str(settings.stream_partitions),
        "OPENSEARCH_HOST": settings.opensearch_host,
        "OPENSEARCH_PORT": str(settings.opensearch_port),
        "OPENSEARCH_INDEX_PREFIX": settings.opensearch_index_prefix,
        "AUDIT_LOG_AWS_S3_BUCKET": str(settings.s3_bucket),
        "AUDIT_LOG_S3_PREFIX": settings.s3_prefix,
        "AWS_ENDPOINT_URL_S3": str(settings.aws_endpoint_url_s3),
        "AWS_ACCESS_KEY_ID": str(settings.aws_access_key_id),
        "AWS_SECRET_ACCESS_KEY": secret.get() if secret else "",
        "AWS_REGION_NAME": settings.aws_region_name or "us-east-1",
        "AUDIT_LOG_SPOOL_DIR": str(settings.spool_dir),
        "AUDIT_LOG_FLUSH_INTERVAL": str(settings.flush_interval),
        # The repository's package, run from a folder of the test's own (no stray .env).
        "PYTHONPATH": str(REPO),
    })
    env.update(extra)
    for name in without:
        env.pop(name, None)
    return env


@dataclass
class StatusRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def figures(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    def __str__(self) -> str:
        return f"exit {self.returncode}\n{self.stdout[-4000:]}\n{self.stderr[-2000:]}"


def run_status(settings: Settings, *args: str, cwd: Path, without: Sequence[str] = (),
               **env: str) -> StatusRun:
    """The command run to its end (the timeout only guards the suite against a hang)."""
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging", "status", *args],
        env=status_env(settings, without, **env), cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )
    return StatusRun(done.returncode, done.stdout, done.stderr)
