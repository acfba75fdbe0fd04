"""What a consumer's ``/readyz`` says, read as untrusted input: bounded in time and size, and
an answer of the wrong shape is reported, never a crash.

The consumer serves on its ``--metrics-port``: ``GET /readyz`` answers 200 or 503 with
``{"status": "ready" | "not ready", "dependencies": {"broker": bool, "opensearch": bool,
"s3": bool}, "partitions": {"<stream>": "active" | "standby"}, "problems": [str, ...]}``.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any, Final

from audit_logging.errors import AuditLoggingError, describe_error, shown
from audit_logging.status.figures import Readiness

MAX_ANSWER: Final = 64 * 1024
READ_TIMEOUT: Final = 5.0  # the whole request, however slowly the bytes come
MAX_ITEMS: Final = 256  # dependencies, partitions or problems shown of one answer
_TEXT: Final = 200
_ROLES: Final = ("active", "standby")


class ConsumerUrlError(AuditLoggingError):
    """A ``--consumer-url`` that cannot be asked; the message names it."""


def check_url(url: str) -> str:
    """``url`` (http or https, a host, no credentials, no query), without a trailing '/'."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConsumerUrlError(f"--consumer-url '{shown(url)}' must be an http:// or https:// "
                               "URL with a host, such as http://consumer-1:9108")
    if parts.username is not None or parts.password is not None:
        raise ConsumerUrlError("--consumer-url must not hold credentials")
    if parts.query or parts.fragment:
        raise ConsumerUrlError(f"--consumer-url '{shown(url)}' must have no query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConsumerUrlError(f"--consumer-url '{shown(url)}' has a bad port") from None
    return url.rstrip("/")


def read_readiness(url: str, timeout: float = READ_TIMEOUT) -> Readiness:
    """GET ``url``/readyz and judge its answer (never raises)."""
    figures = Readiness(url)
    try:
        status, body = _get(url + "/readyz", timeout)
    except _AnswerError as exc:
        figures.reachable = True
        figures.http_status = exc.status
        figures.error = f"/readyz answered HTTP {exc.status} but {exc}"
        return figures
    except TimeoutError:
        figures.error = f"unreachable: no answer within {timeout:g} s"
        return figures
    except Exception as exc:  # noqa: BLE001 - refused, reset, not HTTP
        figures.error = f"unreachable: {describe_error(exc, 200)}"
        return figures
    figures.reachable = True
    figures.http_status = status
    if status not in (200, 503):
        figures.error = f"/readyz answered HTTP {status}"
        return figures
    try:
        _read_answer(json.loads(body), figures)
    except (ValueError, TypeError, RecursionError) as exc:
        figures.error = f"/readyz answered HTTP {status} with no readiness report: {_said(exc)}"
        figures.ready = None
        return figures
    if figures.ready != (status == 200):
        figures.error = (f"/readyz answered HTTP {status} with status "
                         f"{'ready' if figures.ready else 'not ready'}")
    return figures


class _AnswerError(Exception):
    """An answer begun and not finished as it must be: too large, or too slow."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of a GET, within ``timeout`` seconds in all, the body at most
    :data:`MAX_ANSWER` bytes."""
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = b""
        try:
            while len(body) <= MAX_ANSWER:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if connection.sock is not None:
                    connection.sock.settimeout(left)
                chunk = response.read1(MAX_ANSWER + 1 - len(body))
                if not chunk:
                    return response.status, body
                body += chunk
        except TimeoutError:
            raise _AnswerError(response.status, "no complete answer within "
                                                f"{timeout:g} s") from None
        except http.client.IncompleteRead:
            raise _AnswerError(response.status, "the answer was cut short") from None
        raise _AnswerError(response.status, f"the answer is larger than {MAX_ANSWER // 1024} KiB")
    finally:
        connection.close()


def _read_answer(answer: Any, figures: Readiness) -> None:
    if not isinstance(answer, dict):
        raise TypeError(f"a JSON {type(answer).__name__}, not an object")
    status = answer.get("status")
    if status not in ("ready", "not ready"):
        raise ValueError("'status' is not \"ready\" or \"not ready\"")
    figures.ready = status == "ready"
    dependencies = _object(answer, "dependencies")
    for name, value in list(dependencies.items())[:MAX_ITEMS]:
        if not isinstance(value, bool):
            raise TypeError(f"dependency '{shown(name)}' is not true or false")
        figures.dependencies[shown(name, _TEXT)] = value
    partitions = _object(answer, "partitions")
    for name, role in list(partitions.items())[:MAX_ITEMS]:
        if role not in _ROLES:
            raise ValueError(f"partition '{shown(name)}' is not \"active\" or \"standby\"")
        figures.partitions[shown(name, _TEXT)] = role
    problems = answer.get("problems", [])
    if not isinstance(problems, list) or not all(isinstance(item, str) for item in problems):
        raise TypeError("'problems' is not a list of strings")
    figures.problems = [shown(item, _TEXT) for item in problems[:MAX_ITEMS]]


def _object(answer: dict[str, Any], name: str) -> dict[str, Any]:
    value = answer.get(name, {})
    if not isinstance(value, dict):
        raise TypeError(f"'{name}' is not an object")
    return value


def _said(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return shown(str(exc), _TEXT)
