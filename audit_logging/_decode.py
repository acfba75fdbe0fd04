"""The one strict decoder: bytes from anywhere in, a checked record or the reason out.

The consumer runs every stream message through :func:`decode_record`, and the capture side's
tests hold it to the same rule: what capture publishes decodes unchanged. It never raises:
a hostile message must cost one dead letter, not the consumer. Before ``json`` sees the text,
a linear scan bounds its nesting (``json`` recurses, and Python's recursion limit is far
above what a record needs), and the parse hooks bound the number of keys and refuse
duplicate keys, which two JSON readers could resolve differently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from audit_logging.errors import RecordError
from audit_logging.record import MAX_RECORD_BYTES, build_record

# Deeper than any record needs (extra and changes allow 32 levels below the record).
MAX_DEPTH: Final = 40
# Keys in one message, all objects together: a 512 KiB body could hold 100,000.
MAX_KEYS: Final = 10_000
_DETAIL_LIMIT: Final = 300

# A JSON string literal, matched possessively so a hostile body cannot make it backtrack.
# An unterminated one runs to the end of the text: were it to fail instead, the search would
# start again at each later quote and read the rest of the text each time (quadratic).
_STRING: Final = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
# OpenSearch (Jackson) refuses number literals of over 1,000 characters; capture keeps
# integers to 3,000 bits (904 digits).
MAX_NUMBER_CHARS: Final = 1_000
_BRACKETS: Final = re.compile(r"[\[\]{}]")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a body is not a record: a short ``reason`` code and a bounded ``detail``."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


class _RefusedError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def decode_record(body: bytes) -> dict[str, Any] | Rejection:
    """The checked record in ``body``, or a :class:`Rejection`; never raises."""
    try:
        return _decode(body)
    except _RefusedError as refused:
        return refused.rejection
    except RecordError as exc:
        return Rejection("invalid_record", _bounded(str(exc)))
    except Exception as exc:  # noqa: BLE001 - the contract: a reason, never an exception
        return Rejection("invalid_record", _bounded(f"{type(exc).__name__}: {exc}"))


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text``, in time linear in its length."""
    outside_strings = _STRING.sub("", text)
    steps = [_STEP[bracket] for bracket in _BRACKETS.findall(outside_strings)]
    return max(accumulate(steps), default=0)


def _decode(body: bytes) -> dict[str, Any]:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise _RefusedError("not_bytes", f"the body is a {type(body).__name__}, not bytes")
    if len(body) > MAX_RECORD_BYTES:
        raise _RefusedError(
            "too_large", f"the body is {len(body)} bytes, over the {MAX_RECORD_BYTES} limit"
        )
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _RefusedError(
            "not_utf8", f"the body is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise _RefusedError(
            "too_deep", f"the body nests {depth} levels, over the {MAX_DEPTH} limit"
        )
    counter = _KeyCounter()
    try:
        data = json.loads(
            text,
            object_pairs_hook=counter.object,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except _RefusedError:
        raise
    except ValueError as exc:
        raise _RefusedError("not_json", _bounded(f"the body is not JSON ({exc})")) from None
    if not isinstance(data, dict):
        raise _RefusedError(
            "not_object", f"the body must be a JSON object, got {type(data).__name__}"
        )
    return build_record(data, require_ids=True)


class _KeyCounter:
    def __init__(self) -> None:
        self.keys = 0

    def object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self.keys += len(pairs)
        if self.keys > MAX_KEYS:
            raise _RefusedError("too_many_keys", f"the body has more than {MAX_KEYS} keys")
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise _RefusedError(
                        "not_json",
                        f"the body repeats the key {_bounded(repr(key), 80)}",
                    )
                seen.add(key)
        return result


def _refuse_constant(name: str) -> Any:
    raise _RefusedError("not_json", f"the body is not JSON ({name} is not a JSON value)")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _RefusedError(
            "not_json",
            f"the body holds a number of {len(text)} characters, over {MAX_NUMBER_CHARS}",
        )
    return int(text)


def _finite_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _RefusedError(
            "not_json",
            f"the body holds a number of {len(text)} characters, over {MAX_NUMBER_CHARS}",
        )
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _RefusedError(
            "not_json", f"the body is not JSON the way records are: {_bounded(text, 40)} overflows"
        )
    return value


def _bounded(text: str, limit: int = _DETAIL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
