"""The .env reader handles the quoting python-dotenv and docker compose handle."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings, read_env_file

CASES = [
    ("A=a", "a"),
    ("A = spaced ", "spaced"),
    ('A="a b"', "a b"),
    ("A='a b'", "a b"),
    ('A="quoted" # a comment', "quoted"),
    ("A='quoted'   # a comment", "quoted"),
    ("A=unquoted # a comment", "unquoted"),
    ("A=a#b", "a#b"),
    ('A="a # b"', "a # b"),
    ('A="line\\nbreak"', "line\nbreak"),
    ("A='line\\nbreak'", "line\\nbreak"),
    ('A="say \\"hi\\""', 'say "hi"'),
    ('A="back\\\\slash"', "back\\slash"),
    ("export A=exported", "exported"),
    ("A=", ""),
    ('A=""', ""),
    ("A=it's", "it's"),
]


@pytest.mark.parametrize(("line", "value"), CASES)
def test_values_read_as_dotenv_reads_them(tmp_path: Path, line: str, value: str) -> None:
    env = tmp_path / ".env"
    env.write_text(f"# settings\n\n{line}\n", encoding="utf-8")
    assert read_env_file(env) == {"A": value}


@pytest.mark.parametrize("line", ['A="unclosed', "A='unclosed", 'A="a" trailing', "no equals"])
def test_a_malformed_line_is_an_error_naming_the_line(tmp_path: Path, line: str) -> None:
    env = tmp_path / ".env"
    env.write_text(f"B=1\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"\.env:2"):
        read_env_file(env)


def test_a_quoted_value_with_a_comment_reaches_the_setting(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('AUDIT_LOG_S3_PREFIX="archive/" # where records go\n', encoding="utf-8")
    assert Settings.load(environ={}, env_file=env).s3_prefix == "archive/"
