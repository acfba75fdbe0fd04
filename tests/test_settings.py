from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit_logging.errors import AuditLoggingError, ConfigurationError
from audit_logging.settings import Secret, Settings, read_env_file


def load(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    return Settings.load(environ=environ or {}, env_file=None, **overrides)


def test_defaults_are_the_seeds() -> None:
    settings = load()
    assert settings.rabbitmq_stream_port == 5552
    assert settings.rabbitmq_stream_vhost == "/"
    assert settings.rabbitmq_stream_name == "audit_logs_stream"
    assert settings.opensearch_port == 9200
    assert settings.opensearch_index_prefix == "audit-logs"
    assert settings.batch_size == 1000
    assert settings.flush_interval == 60.0
    assert settings.s3_prefix == "audit-logs/"
    assert settings.retention_months == 12
    assert settings.session_key_mode == "hash"


def test_keyword_beats_environment_beats_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport AUDIT_LOG_BATCH_SIZE=7\nRABBITMQ_STREAM_NAME='from_file'\n"
        'OPENSEARCH_HOST="file-host" \nAUDIT_LOG_SOURCE=svc # trailing comment\n'
    )
    settings = Settings.load(
        environ={"AUDIT_LOG_BATCH_SIZE": "8", "RABBITMQ_STREAM_NAME": "from_env"},
        env_file=env_file,
        batch_size=9,
    )
    assert settings.batch_size == 9
    assert settings.rabbitmq_stream_name == "from_env"
    assert settings.opensearch_host == "file-host"
    assert settings.source == "svc"


def test_keyword_may_use_the_environment_name() -> None:
    assert load(AUDIT_LOG_BATCH_SIZE=5).batch_size == 5
    assert load(audit_log_batch_size="6").batch_size == 6


def test_same_setting_twice_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_BATCH_SIZE.*twice"):
        load(batch_size=1, AUDIT_LOG_BATCH_SIZE=2)


def test_unknown_keyword_is_named() -> None:
    with pytest.raises(ConfigurationError, match="batchsize.*not a setting"):
        load(batchsize=3)


def test_empty_environment_value_means_unset() -> None:
    assert load({"RABBITMQ_STREAM_PORT": "", "AUDIT_LOG_SOURCE": " "}).rabbitmq_stream_port == 5552


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("RABBITMQ_STREAM_PORT", "abc", "RABBITMQ_STREAM_PORT: must be an integer, got 'abc'"),
        ("RABBITMQ_STREAM_PORT", "70000", "RABBITMQ_STREAM_PORT: must be from 1 to 65535"),
        ("OPENSEARCH_PORT", "0", "OPENSEARCH_PORT: must be from 1 to 65535, got 0"),
        ("RABBITMQ_STREAM_HOST", "bad host", "RABBITMQ_STREAM_HOST: must be a host"),
        ("OPENSEARCH_HOST", "http://x/y", "OPENSEARCH_HOST: must be a host"),
        ("RABBITMQ_STREAM_NAME", "no spaces!", "RABBITMQ_STREAM_NAME: must be letters"),
        ("OPENSEARCH_USE_SSL", "maybe", "OPENSEARCH_USE_SSL: must be true or false, got 'maybe'"),
        ("OPENSEARCH_VERIFY_CERTS", "2", "OPENSEARCH_VERIFY_CERTS: must be true or false"),
        ("OPENSEARCH_INDEX_PREFIX", "Upper", "OPENSEARCH_INDEX_PREFIX: must be lower-case"),
        ("AUDIT_LOG_AWS_S3_BUCKET", "Bad_Bucket", "AUDIT_LOG_AWS_S3_BUCKET: must be a valid S3"),
        ("AUDIT_LOG_S3_PREFIX", "/abs", "AUDIT_LOG_S3_PREFIX: must be a relative"),
        ("AWS_REGION_NAME", "EU WEST", "AWS_REGION_NAME: must be an AWS region"),
        ("AWS_ENDPOINT_URL_S3", "ftp://x", "AWS_ENDPOINT_URL_S3: must be an http"),
        ("AUDIT_LOG_BATCH_SIZE", "0", "AUDIT_LOG_BATCH_SIZE: must be from 1 to 100000, got 0"),
        ("AUDIT_LOG_BATCH_SIZE", "1.5", "AUDIT_LOG_BATCH_SIZE: must be an integer"),
        ("AUDIT_LOG_FLUSH_INTERVAL", "soon", "AUDIT_LOG_FLUSH_INTERVAL: must be a number"),
        ("AUDIT_LOG_FLUSH_INTERVAL", "nan", "AUDIT_LOG_FLUSH_INTERVAL: must be from"),
        ("AUDIT_LOG_FLUSH_INTERVAL", "-1", "AUDIT_LOG_FLUSH_INTERVAL: must be from"),
        ("AUDIT_LOG_RETENTION_MONTHS", "0", "AUDIT_LOG_RETENTION_MONTHS: must be from 1"),
        ("AUDIT_LOG_QUEUE_SIZE", "-5", "AUDIT_LOG_QUEUE_SIZE: must be from 1"),
        ("AUDIT_LOG_SESSION_KEY_MODE", "encrypt", "AUDIT_LOG_SESSION_KEY_MODE: must be one of"),
        ("AUDIT_LOG_SOURCE", "my service", "AUDIT_LOG_SOURCE: must be 1 to 128"),
        ("AUDIT_LOG_SPOOL_DIR", "a\x00b", "AUDIT_LOG_SPOOL_DIR: must be a file system path"),
        ("AUDIT_LOG_STREAM_MAX_AGE", "7 days", "AUDIT_LOG_STREAM_MAX_AGE: must be a RabbitMQ"),
    ],
)
def test_every_bad_value_names_the_setting_and_the_value(
    env: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        load({env: value})
    assert expected in str(info.value)
    assert isinstance(info.value, AuditLoggingError)
    assert info.value.setting == env


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("AUDIT_LOG_HASH_KEY", "short-secret"),
        ("AUDIT_LOG_HASH_KEY", "tiny"),
    ],
)
def test_bad_secret_is_never_echoed(env: str, value: str) -> None:
    for environ, keywords in (({env: value}, {}), ({}, {env: value})):
        with pytest.raises(ConfigurationError) as info:
            Settings.load(environ=environ, env_file=None, **keywords)
        assert env in str(info.value)
        assert value not in str(info.value)


def test_secret_of_wrong_type_is_named_without_its_value() -> None:
    with pytest.raises(
        ConfigurationError, match="AWS_SECRET_ACCESS_KEY: must be a string, got int"
    ):
        load(aws_access_key_id="id", aws_secret_access_key=12345678)


def test_secrets_do_not_show_in_repr() -> None:
    settings = load(
        {"RABBITMQ_STREAM_PASSWORD": "hunter2-password", "AUDIT_LOG_API_TOKENS": "tok-xyz"},
        hash_key="k" * 32,
    )
    text = repr(settings) + str(settings.rabbitmq_stream_password)
    for secret in ("hunter2-password", "tok-xyz", "k" * 32):
        assert secret not in text
    assert settings.rabbitmq_stream_password.get() == "hunter2-password"
    assert Secret("a") == Secret("a")


def test_aws_credentials_go_together() -> None:
    with pytest.raises(ConfigurationError, match="AWS_SECRET_ACCESS_KEY"):
        load({"AWS_ACCESS_KEY_ID": "id"})
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        load({"AWS_SECRET_ACCESS_KEY": "secret"})


def test_opensearch_password_needs_a_username() -> None:
    with pytest.raises(ConfigurationError, match="OPENSEARCH_USERNAME"):
        load({"OPENSEARCH_PASSWORD": "pw"})


def test_typed_keywords_are_checked_too() -> None:
    with pytest.raises(
        ConfigurationError, match="AUDIT_LOG_BATCH_SIZE: must be an integer, got True"
    ):
        load(batch_size=True)
    with pytest.raises(ConfigurationError, match="RABBITMQ_STREAM_HOST: must be a string"):
        load(rabbitmq_stream_host=5)


def test_s3_prefix_always_ends_with_a_slash() -> None:
    assert load(s3_prefix="archive").s3_prefix == "archive/"
    assert load(s3_prefix="").s3_prefix == "audit-logs/"


def test_require_names_the_missing_setting() -> None:
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_AWS_S3_BUCKET: is required"):
        load().require("s3_bucket")


def test_bad_env_file_line_is_named(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GOOD=1\nthis is not a setting\n")
    with pytest.raises(ConfigurationError, match=r"\.env:2"):
        read_env_file(env_file)
    assert read_env_file(tmp_path / "missing.env") == {}


@pytest.mark.parametrize("raw", ["1_000", "\u0663", "\uff11", "+5", "1e3", "9" * 19, "x" * 5000])
def test_an_integer_setting_takes_ascii_digits_only_and_echoes_a_bad_value_bounded(
    raw: str,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(env_file=None, environ={"AUDIT_LOG_OBJECT_LOCK_DAYS": raw})
    message = str(caught.value)
    assert "AUDIT_LOG_OBJECT_LOCK_DAYS" in message and len(message) < 200
