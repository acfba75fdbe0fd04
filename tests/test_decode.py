"""The strict decoder: each hostile body that once crashed the consumer gets a reason."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from audit_logging._decode import MAX_DEPTH, MAX_KEYS, Rejection, decode_record, nesting_depth
from audit_logging.errors import RecordError
from audit_logging.record import (
    MAX_RECORD_BYTES,
    build_record,
    new_log_id,
    record_from_json,
    record_to_json,
)


def good(**fields: Any) -> dict[str, Any]:
    return {
        "log_id": new_log_id(),
        "timestamp": "2026-11-30T12:00:00Z",
        "action": "UPDATE",
    } | fields


def body(**fields: Any) -> bytes:
    return json.dumps(good(**fields)).encode()


def nested(depth: int) -> bytes:
    return b'{"action":"X","extra":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


@pytest.mark.parametrize(
    ("raw", "reason", "words"),
    [
        (nested(1_000), "too_deep", "1001 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep", "100000 levels"),
        (b" " * (MAX_RECORD_BYTES + 1), "too_large", "limit"),
        (b"\xff\xfe{}", "not_utf8", "UTF-8"),
        (b"", "not_json", "not JSON"),
        (b"null", "not_object", "JSON object"),
        (b'{"action":"X","extra":{"a":NaN}}', "not_json", "NaN"),
        (b'{"action":"X","extra":{"a":1e400}}', "not_json", "1e400"),
        (b'{"action":"X","extra":{"a":' + b"9" * 5000 + b"}}", "not_json", "5000 characters"),
        (b'{"action":"CREATE","action":"DELETE"}', "not_json", "repeats the key 'action'"),
        (
            ("{" + ",".join(f'"k{i}":0' for i in range(MAX_KEYS + 1)) + "}").encode(),
            "too_many_keys",
            str(MAX_KEYS),
        ),
    ],
    ids=[
        "deep-1000",
        "deep-100000",
        "too-large",
        "not-utf8",
        "empty",
        "null",
        "nan",
        "float-overflow",
        "huge-int",
        "duplicate-key",
        "too-many-keys",
    ],
)
def test_hostile_bodies_get_a_reason(raw: bytes, reason: str, words: str) -> None:
    result = decode_record(raw)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert words in result.detail


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"log_id": "01937c6e-0a3b-7c3d-8e9f-0123456789ab\n"}, "log_id"),
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, "outside"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "outside"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "outside"),
        ({"timestamp": "2262-04-11T00:00:00Z"}, "outside"),
        ({"schema_version": True}, "schema_version"),
        ({"changes": ["not", "an", "object"]}, "changes"),
    ],
)
def test_invalid_records_get_a_reason_naming_the_field(fields: dict[str, Any], words: str) -> None:
    result = decode_record(body(**fields))
    assert isinstance(result, Rejection)
    assert result.reason == "invalid_record"
    assert words in result.detail


def test_the_depth_scan_ignores_brackets_inside_strings() -> None:
    text = json.dumps(good(object_repr="[[[[{{{{" * 100))
    assert nesting_depth(text) == 1
    assert isinstance(decode_record(text.encode()), dict)


def test_backslash_runs_are_read_once() -> None:
    # A string pattern that could backtrack took minutes on this body; the possessive one
    # reads it once (pytest-timeout would end a quadratic scan).
    assert nesting_depth('["' + "\\\\" * (MAX_RECORD_BYTES // 2) + '"]') == 1
    hostile = b'["' + b"\\" * (MAX_RECORD_BYTES - 8) + b'"]'
    assert isinstance(decode_record(hostile), Rejection)


def test_nesting_at_the_limit_is_a_record() -> None:
    # extra allows 32 levels below itself: the decoder's bound must not refuse those.
    deep: Any = 1
    for _ in range(31):
        deep = {"a": deep}
    record = build_record(good(extra=deep))
    decoded = decode_record(record_to_json(record))
    assert decoded == record
    assert MAX_DEPTH > 32


def test_record_from_json_raises_record_error_with_the_reason() -> None:
    with pytest.raises(RecordError, match="too_deep"):
        record_from_json(nested(2_000))


def test_a_good_body_round_trips() -> None:
    record = build_record(good(username="Jöhn 日本 🎉", extra={"k": [1, 2.5, None]}))
    assert decode_record(record_to_json(record)) == record


def test_capture_repairs_are_records_the_consumer_accepts() -> None:
    # Once, a non-dict `changes` and a too-deep extra were "repaired" into values the
    # consumer then dead-lettered: the record never reached the archive.
    repairs: list[str] = []
    very_deep: Any = "leaf"
    for _ in range(5_000):
        very_deep = [very_deep]
    record = build_record(
        good(changes="free text", extra={"deep": very_deep}), report=repairs.append
    )
    assert record["changes"] == {"value": [None, "free text"]}
    assert len(repairs) == 2
    assert decode_record(record_to_json(record)) == record
    too_big = build_record(good(changes={f"f{i}": ["a" * 100, "b"] for i in range(1000)}))
    assert too_big["truncated"] == ["changes"]
    assert decode_record(record_to_json(too_big)) == too_big


@pytest.mark.parametrize("moment", [10**400, -(10**400), float("nan"), float("inf"), 2**64])
def test_numeric_timestamps_out_of_range_are_a_record_error(moment: Any) -> None:
    with pytest.raises(RecordError, match="timestamp"):
        build_record({"action": "X", "timestamp": moment})


def test_an_unterminated_string_of_escaped_quotes_is_read_once() -> None:
    # The string pattern used to fail at each later quote and start again: 256 KiB took
    # 100 s, during which the consumer's loop stood still. A thread bounds the wait here so a
    # regression fails instead of stalling the suite (a hang guard, not a speed target).
    hostile = b'["' + b'\\"' * (MAX_RECORD_BYTES // 2 - 2)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(decode_record(hostile)), daemon=True)
    worker.start()
    worker.join(60)
    assert results and isinstance(results[0], Rejection)
    assert results[0].reason == "not_json"


def test_numbers_opensearch_refuses_are_refused() -> None:
    # OpenSearch answers 400 for a number of over 1,000 characters: an index_refused record
    # would not be write-once, so the decoder refuses it first.
    at_limit = decode_record(body(extra={"n": int("7" * 1000)}))
    assert isinstance(at_limit, dict)
    for literal in (b"7" * 1001, b"0." + b"5" * 1000):
        raw = body()[:-1] + b',"extra":{"n":' + literal + b"}}"
        result = decode_record(raw)
        assert isinstance(result, Rejection)
        assert "1001 characters" in result.detail or "1002 characters" in result.detail


@pytest.mark.parametrize("address", ["fe80::1%a\r\nFAKE", "fe80::1%eth0", "1.2.3.4%x"])
def test_ip_addresses_with_a_scope_id_are_refused(address: str) -> None:
    with pytest.raises(RecordError, match="ip_address"):
        build_record(good(ip_address=address))
    result = decode_record(body(ip_address=address))
    assert isinstance(result, Rejection)
    assert "ip_address" in result.detail
