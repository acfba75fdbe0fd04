"""The record filters every search takes (audit_logging.record_filter), without services:
strict parsing that names the parameter, and a session key that is never kept or shown."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from audit_logging.errors import AuditLoggingError, FilterError
from audit_logging.record_filter import (
    FILTER_NAMES,
    FILTER_PARAMS,
    MAX_SESSION_LENGTH,
    SESSION,
    RecordFilter,
    TimeBound,
    parse_filter,
    session_lookup,
    stores_no_session_keys,
)
from audit_logging.session_key import HASH_PREFIX, stored_session_key
from audit_logging.settings import Secret, Settings

RAW = "raw-session-0123456789abcdef"
UTC = dt.UTC


class Lookup:
    """A session lookup that records what it was asked (a capture side would hash it)."""

    def __init__(self, answer: str | None = "stored-form") -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, raw: str) -> str | None:
        self.asked.append(raw)
        return self.answer


def refused(values: dict[str, str], lookup: Lookup | None = None) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse_filter(values, lookup or Lookup())
    return info.value


def test_nothing_given_is_no_filter() -> None:
    parsed = parse_filter({}, stores_no_session_keys)
    assert parsed == RecordFilter()
    assert parsed.filters() == {}


def test_the_filters_in_their_order() -> None:
    assert FILTER_NAMES == (
        "user_id", "username", "action", "object_type", "object_id", "request_id", "source",
        "session", "ip_address", "start_time", "end_time", "search_term",
    )  # fmt: skip
    assert [p.name for p in FILTER_PARAMS if p.secret] == ["session"]


def test_every_filter_is_parsed_and_normalised() -> None:
    lookup = Lookup()
    parsed = parse_filter(
        {
            "user_id": "u1",
            "username": "john.doe",
            "action": "CREATE",
            "object_type": "Customer",
            "object_id": "cus_1",
            "request_id": "req-1",
            "source": "billing",
            "session": RAW,
            "ip_address": "10.1.2.3/8",
            "start_time": "2026-01-01",
            "end_time": "2026-01-31",
            "search_term": "  hello ",
            "page_size": "not a filter: the caller's",
        },
        lookup,
    )
    assert lookup.asked == [RAW]
    assert parsed.exact == {
        "user_id": "u1",
        "username": "john.doe",
        "action": "CREATE",
        "object_type": "Customer",
        "object_id": "cus_1",
        "request_id": "req-1",
        "source": "billing",
        "session_key": "stored-form",
    }
    assert parsed.ip_address == "10.0.0.0/8"
    assert parsed.start == TimeBound(dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert parsed.end == TimeBound(dt.datetime(2026, 2, 1, tzinfo=UTC), inclusive=False)
    assert parsed.search_term == "hello"
    assert parsed.filters() == {
        "user_id": "u1",
        "username": "john.doe",
        "action": "CREATE",
        "object_type": "Customer",
        "object_id": "cus_1",
        "request_id": "req-1",
        "source": "billing",
        "session": "given",
        "ip_address": "10.0.0.0/8",
        "start_time": "2026-01-01T00:00:00.000000Z",
        "end_time": "2026-02-01T00:00:00.000000Z",
        "end_time_exclusive": True,
        "search_term": "hello",
    }


def test_the_session_key_is_never_in_the_filters_or_the_repr() -> None:
    # Raw mode stores the key as it is: the stored form is then the credential itself.
    parsed = parse_filter({"session": RAW}, Lookup(answer=RAW))
    assert parsed.exact == {"session_key": RAW}
    assert parsed.filters() == {"session": "given"}
    assert RAW not in repr(parsed) and RAW not in str(parsed)


def test_a_stored_form_longer_than_the_field_is_cut_as_capture_cuts_it() -> None:
    long_raw = "k" * 300
    assert parse_filter({"session": long_raw}, Lookup(answer=long_raw)).exact == {
        "session_key": "k" * 256
    }


@pytest.mark.parametrize(
    ("name", "limit"),
    [("user_id", 256), ("action", 64), ("request_id", 128), ("source", 128)],
)
def test_an_exact_filter_is_bounded_by_its_records_field(name: str, limit: int) -> None:
    assert parse_filter({name: "x" * limit}, stores_no_session_keys).exact == {name: "x" * limit}
    error = refused({name: "x" * (limit + 1)})
    assert error.name == name
    assert str(error) == f"Parameter '{name}' must be at most {limit} characters, got {limit + 1}"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "s" * (MAX_SESSION_LENGTH + 1),
        "s\r\nforged: line" * 1000,
    ],
)
def test_a_bad_session_is_refused_before_the_lookup_and_never_shown(value: str) -> None:
    lookup = Lookup()
    error = refused({"session": value}, lookup)
    assert error.name == "session"
    assert lookup.asked == []
    assert "forged" not in str(error) and "s" * 8 not in str(error)
    assert "\n" not in str(error) and len(str(error)) < 120


def test_a_session_of_the_greatest_length_is_looked_up() -> None:
    lookup = Lookup()
    parse_filter({"session": "s" * MAX_SESSION_LENGTH}, lookup)
    assert lookup.asked == ["s" * MAX_SESSION_LENGTH]


def test_session_is_refused_where_no_session_keys_are_stored() -> None:
    error = refused({"session": RAW}, Lookup(answer=None))
    assert error.name == "session"
    assert "AUDIT_LOG_SESSION_KEY_MODE" in error.reason
    assert RAW not in str(error)
    assert refused({"session": RAW, "action": "A"}, Lookup(answer=None)).name == "session"
    with pytest.raises(FilterError):
        parse_filter({"session": RAW}, stores_no_session_keys)


def test_the_first_bad_filter_in_the_tables_order_is_named() -> None:
    assert refused({"session": "", "user_id": ""}).name == "user_id"
    assert refused({"ip_address": "x", "session": ""}).name == "session"
    assert refused({"search_term": " ", "start_time": "x"}).name == "start_time"
    error = refused({"start_time": "2026-02-01", "end_time": "2026-01-31"})
    assert str(error) == "Parameter 'start_time' is after end_time"


def test_bad_values_are_named_bounded_and_escaped() -> None:
    error = refused({"ip_address": "10.0.0.1\r\n" + "9" * 500})
    assert error.name == "ip_address"
    assert str(error).startswith("Parameter 'ip_address' must be an IPv4 or IPv6 address")
    assert "\n" not in str(error) and len(str(error)) < 200
    assert refused({"end_time": "tomorrow"}).name == "end_time"


def test_filter_error_is_the_librarys_error() -> None:
    error = FilterError("source", "is wrong")
    assert isinstance(error, AuditLoggingError) and isinstance(error, ValueError)
    assert (error.name, error.reason) == ("source", "is wrong")
    assert str(error) == "Parameter 'source' is wrong"


@pytest.fixture
def settings() -> Settings:
    return Settings.load(environ={}, env_file=None, hash_key="k" * 32)


def test_session_lookup_stores_as_the_capture_side_stores(settings: Settings) -> None:
    hashed = session_lookup(settings)(RAW)
    assert hashed == stored_session_key(RAW, "hash", Secret("k" * 32))
    assert hashed is not None and hashed.startswith(HASH_PREFIX) and RAW not in hashed
    raw_mode = dataclasses.replace(settings, session_key_mode="raw")
    assert session_lookup(raw_mode)(RAW) == RAW
    assert session_lookup(dataclasses.replace(settings, session_key_mode="drop"))(RAW) is None
    assert session_lookup(dataclasses.replace(settings, hash_key=None))(RAW) is None
    # What the app's client sends as its cookie is hashed like any other value, even when
    # it looks like a stored form.
    assert parse_filter({"session": str(hashed)}, session_lookup(settings)).exact != {
        "session_key": hashed
    }


def test_the_session_parameter_is_a_secret_with_a_bound() -> None:
    assert SESSION.secret and SESSION.limit == MAX_SESSION_LENGTH
    schema = SESSION.json_schema()
    assert schema["maxLength"] == MAX_SESSION_LENGTH and schema["format"] == "password"
