"""Settings: keyword arguments first, then the environment, then a ``.env`` file.

One frozen :class:`Settings` object is built at start and passed down; nothing deeper in
the library reads the environment. A bad value fails here, naming the setting and, unless
the setting is a secret, the value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from audit_logging._dotenv import read_env_file
from audit_logging._setting_values import (
    BUCKET_RE,
    FORWARDED_HEADERS,
    INDEX_PREFIX_RE,
    NAME_RE,
    OBJECT_LOCK_MODES,
    SESSION_KEY_MODES,
    Secret,
    parse_bool,
    parse_choice,
    parse_duration,
    parse_float,
    parse_forwarded_header,
    parse_host,
    parse_int,
    parse_networks,
    parse_path,
    parse_pattern,
    parse_s3_prefix,
    parse_secret,
    parse_session_mode,
    parse_str,
    parse_url,
)
from audit_logging.errors import ConfigurationError

__all__ = [
    "FORWARDED_HEADERS",
    "SESSION_KEY_MODES",
    "Secret",
    "Settings",
    "parse_forwarded_header",
    "read_env_file",
]


@dataclasses.dataclass(frozen=True)
class _Spec:
    env: str
    parse: Callable[[str, Any], Any]
    secret: bool
    doc: str
    shown: str


def _setting(
    env: str,
    parse: Callable[[str, Any], Any],
    doc: str,
    *,
    secret: bool = False,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    shown: str | None = None,
) -> Any:
    """A field of :class:`Settings`: its environment name (the keyword arguments take either
    name), how a raw value is checked, and what the README's table says of it (``doc``; the
    default as ``shown``, else the default itself), declared with the field."""
    if shown is None:
        if isinstance(default, bool):
            shown = str(default).lower()
        else:
            shown = "" if default is None or default is dataclasses.MISSING else str(default)
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        metadata={"spec": _Spec(env, parse, secret, doc, shown)},
    )


def _default_spool_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "audit_logging" / "spool"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of the library, checked. Build it with :meth:`Settings.load`."""

    rabbitmq_stream_host: str = _setting(
        "RABBITMQ_STREAM_HOST", parse_host, "the broker's stream protocol host", default="localhost"
    )
    rabbitmq_stream_port: int = _setting(
        "RABBITMQ_STREAM_PORT", parse_int(1, 65535), "its stream port", default=5552
    )
    rabbitmq_stream_user: str = _setting(
        "RABBITMQ_STREAM_USER", parse_str, "the broker user", default="guest"
    )
    rabbitmq_stream_password: Secret = _setting(
        "RABBITMQ_STREAM_PASSWORD",
        parse_secret(),
        "its password",
        secret=True,
        default_factory=lambda: Secret("guest"),
        shown="guest",
    )
    rabbitmq_stream_vhost: str = _setting(
        "RABBITMQ_STREAM_VHOST", parse_str, "the virtual host", default="/"
    )
    rabbitmq_stream_name: str = _setting(
        "RABBITMQ_STREAM_NAME",
        parse_pattern(NAME_RE, "letters, digits, '.', '_' or '-'"),
        "the stream (or super stream, see **Partitions**); created if missing, with "
        "`AUDIT_LOG_STREAM_MAX_AGE`",
        default="audit_logs_stream",
    )
    # N > 1: rabbitmq_stream_name is a super stream of N partitions (audit_logging.partitions).
    stream_partitions: int = _setting(
        "AUDIT_LOG_STREAM_PARTITIONS",
        parse_int(1, 64),
        "1: a single stream. N (2 to 64): a super stream of N partitions; publishers and "
        "consumers must agree, and N never changes for a stream",
        default=1,
    )
    stream_max_age: str = _setting(
        "AUDIT_LOG_STREAM_MAX_AGE",
        parse_pattern(re.compile(r"^[1-9][0-9]{0,5}[smhDMY]$"), "a RabbitMQ max-age such as 7D"),
        "how long the stream keeps messages (s, m, h, D, M, Y); the consumer must read them "
        "within it",
        default="7D",
    )
    opensearch_host: str = _setting(
        "OPENSEARCH_HOST", parse_host, "the search cluster's host", default="localhost"
    )
    opensearch_port: int = _setting(
        "OPENSEARCH_PORT", parse_int(1, 65535), "its HTTP port", default=9200
    )
    opensearch_username: str | None = _setting(
        "OPENSEARCH_USERNAME", parse_str, "basic-auth user, if the cluster needs one", default=None
    )
    opensearch_password: Secret | None = _setting(
        "OPENSEARCH_PASSWORD",
        parse_secret(),
        "its password (needs `OPENSEARCH_USERNAME`)",
        secret=True,
        default=None,
    )
    opensearch_use_ssl: bool = _setting(
        "OPENSEARCH_USE_SSL", parse_bool, "talk HTTPS to the cluster", default=False
    )
    opensearch_verify_certs: bool = _setting(
        "OPENSEARCH_VERIFY_CERTS", parse_bool, "check the cluster's certificate", default=True
    )
    opensearch_index_prefix: str = _setting(
        "OPENSEARCH_INDEX_PREFIX",
        parse_pattern(INDEX_PREFIX_RE, "lower-case letters, digits, '.', '_' or '-'"),
        "monthly indices are `{prefix}-YYYY.MM`",
        default="audit-logs",
    )
    s3_bucket: str | None = _setting(
        "AUDIT_LOG_AWS_S3_BUCKET",
        parse_pattern(BUCKET_RE, "a valid S3 bucket name"),
        "the archive's bucket (the consumer needs it)",
        default=None,
    )
    s3_prefix: str = _setting(
        "AUDIT_LOG_S3_PREFIX", parse_s3_prefix, "the archive's key prefix", default="audit-logs/"
    )
    aws_access_key_id: str | None = _setting(
        "AWS_ACCESS_KEY_ID",
        parse_str,
        "S3 credentials, set together; unset: boto3's own chain (instance role, profile)",
        default=None,
    )
    aws_secret_access_key: Secret | None = _setting(
        "AWS_SECRET_ACCESS_KEY",
        parse_secret(),
        "the secret key of `AWS_ACCESS_KEY_ID`",
        secret=True,
        default=None,
    )
    aws_region_name: str | None = _setting(
        "AWS_REGION_NAME",
        parse_pattern(re.compile(r"^[a-z0-9-]{2,32}$"), "an AWS region"),
        "the bucket's region",
        default=None,
    )
    aws_endpoint_url_s3: str | None = _setting(
        "AWS_ENDPOINT_URL_S3",
        parse_url,
        "an S3-compatible store's endpoint; unset for AWS S3",
        default=None,
    )
    signing_key_file: Path | None = _setting(
        "AUDIT_LOG_SIGNING_KEY_FILE",
        parse_path,
        "the consumer's Ed25519 private key (PEM) that signs the archive's digests; unset: "
        "digests are chained but unsigned (see **Integrity**)",
        default=None,
    )
    digest_interval: float = _setting(
        "AUDIT_LOG_DIGEST_INTERVAL",
        parse_duration(1.0, 86_400.0),
        "how often the consumer writes a digest of the objects it archived (and at shutdown): "
        "seconds or 30m, 1h, 1d",
        default=3600.0,
        shown="1h",
    )
    object_lock_days: int | None = _setting(
        "AUDIT_LOG_OBJECT_LOCK_DAYS",
        parse_int(1, 36_500),
        "days each archive, dead-letter and digest object is retained under S3 Object Lock; the "
        "bucket must have Object Lock enabled. Unset: no retention is set",
        default=None,
    )
    object_lock_mode: str = _setting(
        "AUDIT_LOG_OBJECT_LOCK_MODE",
        parse_choice(OBJECT_LOCK_MODES),
        "the Object Lock retention mode: GOVERNANCE or COMPLIANCE",
        default="GOVERNANCE",
    )
    batch_size: int = _setting(
        "AUDIT_LOG_BATCH_SIZE",
        parse_int(1, 100_000),
        "records in one consumer batch (one Parquet file per day in it)",
        default=1000,
    )
    flush_interval: float = _setting(
        "AUDIT_LOG_FLUSH_INTERVAL",
        parse_float(0.01, 86_400.0),
        "seconds before a batch that is not full is closed",
        default=60.0,
    )
    retention_months: int = _setting(
        "AUDIT_LOG_RETENTION_MONTHS",
        parse_int(1, 1200),
        "OpenSearch indices older than this are deleted (S3 never)",
        default=12,
    )
    spool_dir: Path = _setting(
        "AUDIT_LOG_SPOOL_DIR",
        parse_path,
        "the local durable spool for records the broker cannot take yet",
        default_factory=_default_spool_dir,
        shown="`$XDG_STATE_HOME/audit_logging/spool` (`~/.local/state/…`)",
    )
    queue_size: int = _setting(
        "AUDIT_LOG_QUEUE_SIZE",
        parse_int(1, 10_000_000),
        "records held in memory before the spool takes over",
        default=10_000,
    )
    hash_key: Secret | None = _setting(
        "AUDIT_LOG_HASH_KEY",
        parse_secret(16),
        "the key session keys are hashed with (at least 16 characters)",
        secret=True,
        default=None,
    )
    session_key_mode: str = _setting(
        "AUDIT_LOG_SESSION_KEY_MODE",
        parse_session_mode,
        "how session keys are stored: hash, raw or drop",
        default="hash",
    )
    # The one forwarding header the trusted proxies write; the other is never read.
    forwarded_header: str = _setting(
        "AUDIT_LOG_FORWARDED_HEADER",
        parse_forwarded_header,
        "which forwarding header the middleware reads from trusted proxies: "
        "`X-Forwarded-For` or `Forwarded` (any case)",
        default="X-Forwarded-For",
    )
    api_tokens: Secret | None = _setting(
        "AUDIT_LOG_API_TOKENS",
        parse_secret(),
        "the API's Bearer tokens, comma-separated",
        secret=True,
        default=None,
    )
    api_tokens_file: Path | None = _setting(
        "AUDIT_LOG_API_TOKENS_FILE",
        parse_path,
        "or a file of them, one a line",
        default=None,
    )
    # Peers (never a forwarding header) that may read the API's /metrics without a token.
    metrics_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _setting(
        "AUDIT_LOG_METRICS_NETWORKS",
        parse_networks,
        "networks (CIDR, comma-separated) whose direct peers may read the API's `/metrics` "
        "without a token, e.g. the Prometheus servers'; unset: `/metrics` needs a token",
        default=(),
        shown="",
    )
    source: str | None = _setting(
        "AUDIT_LOG_SOURCE",
        parse_pattern(
            re.compile(r"^[\x21-\x7e]{1,128}$"),
            "1 to 128 printable ASCII characters without spaces",
        ),
        "the emitting service's name, stored in each record",
        default=None,
    )

    @classmethod
    def load(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = ".env",
        **overrides: Any,
    ) -> Settings:
        """Build settings from ``overrides``, then ``environ`` (default ``os.environ``),
        then ``env_file`` (``None`` to skip it). Keyword names are the field names
        (``batch_size``) or the environment names (``AUDIT_LOG_BATCH_SIZE``)."""
        given: dict[str, Any] = {}
        for key, value in overrides.items():
            name = key if key in _SPECS else _ENV_TO_FIELD.get(key.lower())
            if name is None:
                raise ConfigurationError(key, "is not a setting of audit_logging")
            if name in given:
                raise ConfigurationError(_SPECS[name].env, "is given twice")
            given[name] = value
        env = os.environ if environ is None else environ
        file_values = read_env_file(Path(env_file)) if env_file is not None else {}
        values: dict[str, Any] = {}
        for name, spec in _SPECS.items():
            if name in given:
                raw = given[name]
                if raw is None:
                    continue
            elif spec.env in env:
                raw = env[spec.env]
            elif spec.env in file_values:
                raw = file_values[spec.env]
            else:
                continue
            if isinstance(raw, str) and raw.strip() == "":
                # An empty variable means "not set", as in most tools.
                continue
            values[name] = spec.parse(spec.env, raw)
        settings = cls(**values)
        settings._check_consistency()
        return settings

    def _check_consistency(self) -> None:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            missing = (
                "AWS_SECRET_ACCESS_KEY"
                if self.aws_secret_access_key is None
                else ("AWS_ACCESS_KEY_ID")
            )
            raise ConfigurationError(missing, "must be set together with the other AWS credential")
        if self.opensearch_password is not None and self.opensearch_username is None:
            raise ConfigurationError(
                "OPENSEARCH_USERNAME", "must be set when OPENSEARCH_PASSWORD is set"
            )

    def env_name(self, field: str) -> str:
        """The environment name of a setting, for error messages elsewhere."""
        return _SPECS[field].env

    def stream_client_args(self) -> dict[str, Any]:
        """Where and as whom an rstream Producer or Consumer connects (keyword arguments)."""
        return {
            "host": self.rabbitmq_stream_host,
            "port": self.rabbitmq_stream_port,
            "vhost": self.rabbitmq_stream_vhost,
            "username": self.rabbitmq_stream_user,
            "password": self.rabbitmq_stream_password.get(),
        }

    def require(self, field: str) -> Any:
        """The value of a setting that this feature cannot do without."""
        value = getattr(self, field)
        if value is None:
            raise ConfigurationError(_SPECS[field].env, "is required here and is not set")
        return value


# Field name -> its declaration, from the fields of Settings.
_SPECS: Final[dict[str, _Spec]] = {
    field.name: field.metadata["spec"] for field in dataclasses.fields(Settings)
}
_ENV_TO_FIELD: Final = {spec.env.lower(): name for name, spec in _SPECS.items()}


def environment_name(key: str) -> str | None:
    """The environment name of a setting given by its field or environment name (any case),
    or None when it is not a setting."""
    name = key if key in _SPECS else _ENV_TO_FIELD.get(key.lower())
    return None if name is None else _SPECS[name].env


def markdown_table() -> str:
    """The README's settings table, made from the declarations above."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for spec in _SPECS.values():
        shown = spec.shown if spec.shown.startswith("`") else _code(spec.shown)
        rows.append(f"| `{spec.env}` | {shown} | {spec.doc} |")
    return "\n".join(rows) + "\n"


def _code(value: str) -> str:
    return f"`{value}`" if value else "(unset)"
