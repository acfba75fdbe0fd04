"""A ``.env`` file read as python-dotenv and docker compose read one.

``KEY=value`` lines, ``export KEY=value`` allowed, ``#`` comments on their own line or after
an unquoted value (``#`` preceded by a space). Single quotes keep everything inside as it is;
double quotes understand ``\\"``, ``\\\\``, ``\\n``, ``\\t`` and may be followed by a comment.
A quote that is never closed is an error naming the line, not a value with a quote in it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from audit_logging.errors import ConfigurationError

_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "$": "$"}


def read_env_file(path: Path) -> dict[str, str]:
    """The file's values; a missing file: {}. Unreadable or malformed: ConfigurationError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(str(path), f"cannot be read as a .env file: {exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, rest = stripped.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ConfigurationError(f"{path}:{number}", "is not a KEY=value line")
        value = _value(rest.strip())
        if value is None:
            raise ConfigurationError(f"{path}:{number}", f"{key}: a quote is not closed")
        values[key] = value
    return values


def _value(raw: str) -> str | None:
    if raw[:1] == "'":
        end = raw.find("'", 1)
        if end < 0 or not _only_comment(raw[end + 1 :]):
            return None
        return raw[1:end]
    if raw[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(raw):
            char = raw[i]
            if char == "\\" and i + 1 < len(raw):
                following = raw[i + 1]
                out.append(_ESCAPES.get(following, "\\" + following))
                i += 2
                continue
            if char == '"':
                return "".join(out) if _only_comment(raw[i + 1 :]) else None
            out.append(char)
            i += 1
        return None
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).rstrip()


def _only_comment(after: str) -> bool:
    after = after.strip()
    return not after or after.startswith("#")
