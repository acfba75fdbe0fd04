"""Settings: keyword arguments first, then the environment, then a ``.env`` file.

One frozen :class:`Settings` object is built at start and passed down; nothing deeper in
the library reads the environment. A bad value fails here, naming the setting and, unless
the setting is a secret, the value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from audit_logging._dotenv import read_env_file
from audit_logging.errors import ConfigurationError

__all__ = ["FORWARDED_HEADERS", "SESSION_KEY_MODES", "Secret", "Settings", "read_env_file"]


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


SESSION_KEY_MODES: Final = ("hash", "raw", "drop")
FORWARDED_HEADERS: Final = ("X-Forwarded-For", "Forwarded")
_BOOL_WORDS: Final = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_INDEX_PREFIX_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,100}$")
_BUCKET_RE: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _parse_str(setting: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigurationError(setting, f"must be a string, got {type(raw).__name__}")
    return raw


def _parse_int(lo: int, hi: int) -> Callable[[str, Any], int]:
    def parse(setting: str, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigurationError(setting, f"must be an integer, got {raw!r}")
        if isinstance(raw, int):
            value = raw
        else:
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise ConfigurationError(setting, f"must be an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ConfigurationError(setting, f"must be from {lo} to {hi}, got {value}")
        return value

    return parse


def _parse_float(lo: float, hi: float) -> Callable[[str, Any], float]:
    def parse(setting: str, raw: Any) -> float:
        if isinstance(raw, bool):
            raise ConfigurationError(setting, f"must be a number, got {raw!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(setting, f"must be a number, got {raw!r}") from None
        if math.isnan(value) or not lo <= value <= hi:
            raise ConfigurationError(setting, f"must be from {lo:g} to {hi:g}, got {raw!r}")
        return value

    return parse


def _parse_bool(setting: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in _BOOL_WORDS:
        raise ConfigurationError(setting, f"must be true or false, got {raw!r}")
    return _BOOL_WORDS[word]


def _parse_pattern(pattern: re.Pattern[str], what: str) -> Callable[[str, Any], str]:
    def parse(setting: str, raw: Any) -> str:
        value = _parse_str(setting, raw)
        if not pattern.match(value):
            raise ConfigurationError(setting, f"must be {what}, got {value!r}")
        return value

    return parse


def _parse_host(setting: str, raw: Any) -> str:
    value = _parse_str(setting, raw).strip()
    if not value or any(c.isspace() or c in "/?#@" for c in value) or len(value) > 253:
        raise ConfigurationError(setting, f"must be a host name or address, got {raw!r}")
    return value


def _parse_url(setting: str, raw: Any) -> str:
    value = _parse_str(setting, raw).strip()
    if not re.match(r"^https?://[^\s/?#]+(/[^\s]*)?$", value):
        raise ConfigurationError(setting, f"must be an http:// or https:// URL, got {raw!r}")
    return value.rstrip("/")


def _parse_s3_prefix(setting: str, raw: Any) -> str:
    value = _parse_str(setting, raw)
    if value.startswith("/") or "//" in value or len(value) > 512 or not value.isprintable():
        raise ConfigurationError(setting, f"must be a relative S3 key prefix, got {raw!r}")
    # A prefix is a folder: always end it with "/" so keys never run into it.
    return value if value == "" or value.endswith("/") else value + "/"


def _parse_session_mode(setting: str, raw: Any) -> str:
    value = _parse_str(setting, raw).strip().lower()
    if value not in SESSION_KEY_MODES:
        raise ConfigurationError(
            setting, f"must be one of {', '.join(SESSION_KEY_MODES)}, got {raw!r}"
        )
    return value


def parse_forwarded_header(setting: str, raw: Any) -> str:
    """``X-Forwarded-For`` or ``Forwarded``, in that spelling, whatever the case given."""
    value = _parse_str(setting, raw).strip().lower()
    for name in FORWARDED_HEADERS:
        if value == name.lower():
            return name
    raise ConfigurationError(setting, f"must be one of {', '.join(FORWARDED_HEADERS)}, got {raw!r}")


def _parse_secret(min_length: int = 1) -> Callable[[str, Any], Secret]:
    def parse(setting: str, raw: Any) -> Secret:
        if isinstance(raw, Secret):
            raw = raw.get()
        if not isinstance(raw, str):
            raise ConfigurationError(setting, f"must be a string, got {type(raw).__name__}")
        if len(raw) < min_length:
            # The value is secret: say only how long it must be.
            raise ConfigurationError(setting, f"must be at least {min_length} characters long")
        return Secret(raw)

    return parse


def _parse_path(setting: str, raw: Any) -> Path:
    if isinstance(raw, Path):
        return raw
    value = _parse_str(setting, raw).strip()
    if not value or "\x00" in value:
        raise ConfigurationError(setting, f"must be a file system path, got {raw!r}")
    return Path(value).expanduser()


@dataclasses.dataclass(frozen=True)
class _Spec:
    env: str
    parse: Callable[[str, Any], Any]
    secret: bool = False


def _setting(
    env: str,
    parse: Callable[[str, Any], Any],
    *,
    secret: bool = False,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A field of :class:`Settings`: its environment name (the keyword arguments take either
    name) and how a raw value is checked, declared with the field."""
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        metadata={"spec": _Spec(env, parse, secret)},
    )


def _default_spool_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "audit_logging" / "spool"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of the library, checked. Build it with :meth:`Settings.load`."""

    rabbitmq_stream_host: str = _setting("RABBITMQ_STREAM_HOST", _parse_host, default="localhost")
    rabbitmq_stream_port: int = _setting("RABBITMQ_STREAM_PORT", _parse_int(1, 65535), default=5552)
    rabbitmq_stream_user: str = _setting("RABBITMQ_STREAM_USER", _parse_str, default="guest")
    rabbitmq_stream_password: Secret = _setting(
        "RABBITMQ_STREAM_PASSWORD",
        _parse_secret(),
        secret=True,
        default_factory=lambda: Secret("guest"),
    )
    rabbitmq_stream_vhost: str = _setting("RABBITMQ_STREAM_VHOST", _parse_str, default="/")
    rabbitmq_stream_name: str = _setting(
        "RABBITMQ_STREAM_NAME",
        _parse_pattern(_NAME_RE, "letters, digits, '.', '_' or '-'"),
        default="audit_logs_stream",
    )
    opensearch_host: str = _setting("OPENSEARCH_HOST", _parse_host, default="localhost")
    opensearch_port: int = _setting("OPENSEARCH_PORT", _parse_int(1, 65535), default=9200)
    opensearch_username: str | None = _setting("OPENSEARCH_USERNAME", _parse_str, default=None)
    opensearch_password: Secret | None = _setting(
        "OPENSEARCH_PASSWORD", _parse_secret(), secret=True, default=None
    )
    opensearch_use_ssl: bool = _setting("OPENSEARCH_USE_SSL", _parse_bool, default=False)
    opensearch_verify_certs: bool = _setting("OPENSEARCH_VERIFY_CERTS", _parse_bool, default=True)
    opensearch_index_prefix: str = _setting(
        "OPENSEARCH_INDEX_PREFIX",
        _parse_pattern(_INDEX_PREFIX_RE, "lower-case letters, digits, '.', '_' or '-'"),
        default="audit-logs",
    )
    s3_bucket: str | None = _setting(
        "AUDIT_LOG_AWS_S3_BUCKET",
        _parse_pattern(_BUCKET_RE, "a valid S3 bucket name"),
        default=None,
    )
    s3_prefix: str = _setting("AUDIT_LOG_S3_PREFIX", _parse_s3_prefix, default="audit-logs/")
    aws_access_key_id: str | None = _setting("AWS_ACCESS_KEY_ID", _parse_str, default=None)
    aws_secret_access_key: Secret | None = _setting(
        "AWS_SECRET_ACCESS_KEY", _parse_secret(), secret=True, default=None
    )
    aws_region_name: str | None = _setting(
        "AWS_REGION_NAME",
        _parse_pattern(re.compile(r"^[a-z0-9-]{2,32}$"), "an AWS region"),
        default=None,
    )
    aws_endpoint_url_s3: str | None = _setting("AWS_ENDPOINT_URL_S3", _parse_url, default=None)
    batch_size: int = _setting("AUDIT_LOG_BATCH_SIZE", _parse_int(1, 100_000), default=1000)
    flush_interval: float = _setting(
        "AUDIT_LOG_FLUSH_INTERVAL", _parse_float(0.01, 86_400.0), default=60.0
    )
    retention_months: int = _setting("AUDIT_LOG_RETENTION_MONTHS", _parse_int(1, 1200), default=12)
    stream_max_age: str = _setting(
        "AUDIT_LOG_STREAM_MAX_AGE",
        _parse_pattern(re.compile(r"^[1-9][0-9]{0,5}[smhDMY]$"), "a RabbitMQ max-age such as 7D"),
        default="7D",
    )
    # N > 1: rabbitmq_stream_name is a super stream of N partitions (audit_logging.partitions).
    stream_partitions: int = _setting("AUDIT_LOG_STREAM_PARTITIONS", _parse_int(1, 64), default=1)
    spool_dir: Path = _setting(
        "AUDIT_LOG_SPOOL_DIR", _parse_path, default_factory=_default_spool_dir
    )
    queue_size: int = _setting("AUDIT_LOG_QUEUE_SIZE", _parse_int(1, 10_000_000), default=10_000)
    hash_key: Secret | None = _setting(
        "AUDIT_LOG_HASH_KEY", _parse_secret(16), secret=True, default=None
    )
    session_key_mode: str = _setting(
        "AUDIT_LOG_SESSION_KEY_MODE", _parse_session_mode, default="hash"
    )
    # The one forwarding header the trusted proxies write; the other is never read.
    forwarded_header: str = _setting(
        "AUDIT_LOG_FORWARDED_HEADER", parse_forwarded_header, default="X-Forwarded-For"
    )
    api_tokens: Secret | None = _setting(
        "AUDIT_LOG_API_TOKENS", _parse_secret(), secret=True, default=None
    )
    api_tokens_file: Path | None = _setting("AUDIT_LOG_API_TOKENS_FILE", _parse_path, default=None)
    source: str | None = _setting(
        "AUDIT_LOG_SOURCE",
        _parse_pattern(
            re.compile(r"^[\x21-\x7e]{1,128}$"),
            "1 to 128 printable ASCII characters without spaces",
        ),
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
