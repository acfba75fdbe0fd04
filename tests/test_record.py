from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest

from audit_logging.errors import AuditLoggingError, RecordError
from audit_logging.record import (
    FIELDS,
    MAX_RECORD_BYTES,
    OBJECT_LIMITS,
    SCHEMA_VERSION,
    STRING_LIMITS,
    build_record,
    new_log_id,
    record_from_json,
    record_to_json,
)


def full_fields() -> dict[str, Any]:
    return {
        "action": "UPDATE",
        "user_id": "user_123",
        "username": "john.doe",
        "object_type": "Customer",
        "object_id": "cus_456",
        "object_repr": "John Smith",
        "change_message": "Changed email",
        "changes": {"email": ["a@example.com", "b@example.com"]},
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "session_key": "hmac-sha256:abcd",
        "request_id": "req-1",
        "source": "billing",
        "extra": {"ticket": 42, "tags": ["a", "b"]},
    }


def test_full_record_keeps_every_field_and_fills_ids() -> None:
    record = build_record(full_fields())
    assert tuple(record) == FIELDS
    for name, value in full_fields().items():
        assert record[name] == value
    assert uuid.UUID(record["log_id"]).version == 7
    assert record["timestamp"].endswith("Z")
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["truncated"] == []


def test_log_ids_are_time_ordered_and_unique() -> None:
    ids = [new_log_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_missing_action_is_an_error_even_when_repairing() -> None:
    with pytest.raises(RecordError, match="'action'.*required"):
        build_record({"user_id": "u"})
    with pytest.raises(AuditLoggingError, match="action"):
        build_record({"action": "   "}, report=lambda _msg: None)


def test_unknown_field_is_named() -> None:
    with pytest.raises(RecordError, match="'colour'.*extra"):
        build_record({"action": "CREATE", "colour": "red"})


@pytest.mark.parametrize(("name", "limit"), sorted(STRING_LIMITS.items()))
def test_every_string_field_over_its_limit_is_truncated_and_marked(name: str, limit: int) -> None:
    fields: dict[str, Any] = {"action": "CREATE", name: "x" * (limit + 10)}
    record = build_record(fields)
    assert record[name] == "x" * limit
    assert record["truncated"] == [name]


def test_string_at_its_limit_is_not_marked() -> None:
    record = build_record({"action": "CREATE", "username": "u" * STRING_LIMITS["username"]})
    assert record["truncated"] == []


def test_one_megabyte_change_message_is_truncated_not_dropped() -> None:
    record = build_record({"action": "CREATE", "change_message": "m" * 1_000_000})
    assert len(record["change_message"]) == STRING_LIMITS["change_message"]
    assert record["truncated"] == ["change_message"]


@pytest.mark.parametrize("name", sorted(OBJECT_LIMITS))
def test_object_over_its_limit_keeps_its_start_and_is_marked(name: str) -> None:
    big = {"k": "v" * (OBJECT_LIMITS[name] + 100)}
    value: Any = {"k": [None, big["k"]]} if name == "changes" else big
    record = build_record({"action": "CREATE", name: value})
    assert record["truncated"] == [name]
    kept = record[name]["_truncated_json"]
    assert kept.startswith('{"k":')
    assert len(json.dumps(record[name]).encode()) <= OBJECT_LIMITS[name]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("username", 12),
        ("action", ["CREATE"]),
        ("object_repr", b"bytes"),
        ("change_message", {"a": 1}),
        ("user_agent", 1.5),
        ("user_id", True),
    ],
)
def test_wrong_type_is_an_error_naming_the_field(name: str, value: Any) -> None:
    fields: dict[str, Any] = {"action": "CREATE", name: value}
    with pytest.raises(RecordError, match=f"'{name}'.*must be a string"):
        build_record(fields)


def test_integer_and_uuid_ids_are_accepted_as_strings() -> None:
    oid = uuid.uuid4()
    record = build_record({"action": "VIEW", "user_id": 42, "object_id": oid})
    assert record["user_id"] == "42"
    assert record["object_id"] == str(oid)


def test_wrong_type_is_repaired_and_reported_in_lenient_mode() -> None:
    notes: list[str] = []
    record = build_record({"action": "CREATE", "username": 12}, report=notes.append)
    assert record["username"] == "12"
    assert any("username" in note for note in notes)


@pytest.mark.parametrize("bad", ["300.1.1.1", "not-an-ip", "1.2.3.4, 5.6.7.8", "::g", 123])
def test_invalid_ip_is_an_error(bad: Any) -> None:
    with pytest.raises(RecordError, match="ip_address"):
        build_record({"action": "LOGIN", "ip_address": bad})


def test_invalid_ip_is_dropped_with_a_note_in_lenient_mode() -> None:
    notes: list[str] = []
    record = build_record({"action": "LOGIN", "ip_address": "999.1.1.1"}, report=notes.append)
    assert record["ip_address"] is None
    assert notes and "ip_address" in notes[0]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000000Z"),
        ("2026-01-02T05:04:05.123456+02:00", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02T03:04:05.5-00:30", "2026-01-02T03:34:05.500000Z"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), "2026-01-02T03:04:05.000006Z"),
        (1767323045.25, "2026-01-02T03:04:05.250000Z"),
    ],
)
def test_timestamps_are_normalised_to_utc_microseconds(given: Any, expected: str) -> None:
    assert build_record({"action": "CREATE", "timestamp": given})["timestamp"] == expected


@pytest.mark.parametrize(
    "bad",
    [
        "2026-01-02T03:04:05",
        dt.datetime(2026, 1, 2, 3, 4, 5),
        "yesterday",
        "2026-13-02T03:04:05Z",
        "",
        float("nan"),
        True,
        ["2026-01-02T03:04:05Z"],
    ],
)
def test_naive_or_malformed_timestamp_is_an_error(bad: Any) -> None:
    with pytest.raises(RecordError, match="timestamp"):
        build_record({"action": "CREATE", "timestamp": bad})


def test_naive_timestamp_is_read_as_utc_in_lenient_mode() -> None:
    notes: list[str] = []
    record = build_record(
        {"action": "CREATE", "timestamp": dt.datetime(2026, 1, 2, 3, 4, 5)}, report=notes.append
    )
    assert record["timestamp"] == "2026-01-02T03:04:05.000000Z"
    assert notes


def test_log_id_must_be_a_uuid() -> None:
    with pytest.raises(RecordError, match="log_id"):
        build_record({"action": "CREATE", "log_id": "1; DROP TABLE"})
    upper = str(uuid.uuid4()).upper()
    assert build_record({"action": "CREATE", "log_id": upper})["log_id"] == upper.lower()


class NotSerialisable:
    pass


def test_non_serialisable_extra_is_an_error_naming_the_path() -> None:
    with pytest.raises(RecordError, match=r"extra\.obj.*NotSerialisable"):
        build_record({"action": "CREATE", "extra": {"obj": NotSerialisable()}})


def test_non_serialisable_extra_is_repaired_in_lenient_mode() -> None:
    notes: list[str] = []
    record = build_record(
        {"action": "CREATE", "extra": {"obj": NotSerialisable(), "n": float("inf")}},
        report=notes.append,
    )
    assert "NotSerialisable" in record["extra"]["obj"]
    assert record["extra"]["n"] == "inf"
    assert len(notes) == 2
    record_to_json(record)  # encodes


def test_common_python_values_in_extra_and_changes_are_converted() -> None:
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    record = build_record(
        {
            "action": "UPDATE",
            "changes": {
                "due": (dt.date(2026, 1, 1), dt.date(2026, 2, 1)),
                "price": [decimal.Decimal("1.10"), decimal.Decimal("2.20")],
            },
            "extra": {"at": when, "ids": {3, 1, 2}, 7: "int key"},
        }
    )
    assert record["changes"] == {"due": ["2026-01-01", "2026-02-01"], "price": ["1.10", "2.20"]}
    assert record["extra"] == {"at": when.isoformat(), "ids": [1, 2, 3], "7": "int key"}


def test_changes_must_be_pairs() -> None:
    with pytest.raises(RecordError, match=r"changes\.email.*pair"):
        build_record({"action": "UPDATE", "changes": {"email": "new@example.com"}})
    with pytest.raises(RecordError, match="changes"):
        build_record({"action": "UPDATE", "changes": ["email"]})


def test_extra_must_be_an_object() -> None:
    with pytest.raises(RecordError, match="'extra'.*object"):
        build_record({"action": "CREATE", "extra": "text"})


def test_deep_nesting_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(RecordError, match="deeper"):
        build_record({"action": "CREATE", "extra": deep})


def test_control_characters_are_kept_as_data_and_cannot_forge_a_record() -> None:
    evil = 'bob\r\n{"action":"DELETE","user_id":"admin"}\x00'
    record = build_record({"action": "LOGIN", "username": evil, "change_message": evil})
    encoded = record_to_json(record)
    assert b"\n" not in encoded and b"\r" not in encoded and b"\x00" not in encoded
    decoded = json.loads(encoded)
    assert decoded["username"] == evil
    assert decoded["action"] == "LOGIN"
    assert record_from_json(encoded)["username"] == evil


def test_lone_surrogates_are_replaced_so_the_record_encodes() -> None:
    record = build_record(
        {"action": "CREATE", "username": "a\ud800b", "extra": {"k\udfff": "\ud83d"}}
    )
    assert record["username"] == "a\ufffdb"
    assert record["extra"] == {"k\ufffd": "\ufffd"}
    record_to_json(record)


def test_source_comes_from_settings_unless_given() -> None:
    assert build_record({"action": "CREATE"}, source="svc")["source"] == "svc"
    assert build_record({"action": "CREATE", "source": "own"}, source="svc")["source"] == "own"


def test_schema_version_other_than_one_is_refused() -> None:
    with pytest.raises(RecordError, match="schema_version"):
        build_record({"action": "CREATE", "schema_version": 2})


def test_json_round_trip_keeps_every_field() -> None:
    record = build_record(full_fields() | {"username": "Jöhn 日本 🎉"})
    assert record_from_json(record_to_json(record)) == record


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"action": "CREATE", "x": NaN}', "not JSON"),
        (b" " * (MAX_RECORD_BYTES + 1), "limit"),
    ],
)
def test_bad_stream_bodies_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        record_from_json(body)


def test_stream_record_needs_its_ids() -> None:
    with pytest.raises(RecordError, match="log_id"):
        record_from_json(b'{"action": "CREATE", "timestamp": "2026-01-01T00:00:00Z"}')
    with pytest.raises(RecordError, match="timestamp"):
        record_from_json(json.dumps({"action": "CREATE", "log_id": new_log_id()}).encode())


def test_truncated_list_from_the_stream_is_kept() -> None:
    record = build_record({"action": "CREATE", "change_message": "x" * 9000})
    again = record_from_json(record_to_json(record))
    assert again["truncated"] == ["change_message"]
    with pytest.raises(RecordError, match="truncated"):
        build_record({"action": "CREATE", "truncated": ["nope"]})
