"""Query parameter validation, without services: every refusal names the parameter."""

from __future__ import annotations

import datetime as dt

import pytest

from audit_logging.api.cursor import Cursor, decode_cursor, encode_cursor
from audit_logging.api.errors import BadParameterError
from audit_logging.api.params import (
    MAX_SEARCH_TERM,
    SEARCH_PARAMETERS,
    SearchParams,
    TimeBound,
    parse_search,
)

UTC = dt.UTC


def parse(**values: str) -> SearchParams:
    return parse_search(list(values.items()))


def refused(items: list[tuple[str, str]]) -> BadParameterError:
    with pytest.raises(BadParameterError) as info:
        parse_search(items)
    assert info.value.status == 400
    return info.value


def test_nothing_given_means_defaults() -> None:
    params = parse()
    assert params == SearchParams()
    assert params.page_size == 20
    assert params.from_offset == 0
    assert params.offset == 0
    assert params.filters() == {}


def test_every_documented_parameter_is_accepted() -> None:
    params = parse(
        user_id="u1",
        username="john.doe",
        action="CREATE",
        object_type="Customer",
        object_id="cus_1",
        ip_address="10.0.0.1",
        start_time="2026-01-01T00:00:00Z",
        end_time="2026-01-02T00:00:00Z",
        search_term="  hello world ",
        page_size="100",
        from_offset="9900",
    )
    assert params.exact == {
        "user_id": "u1",
        "username": "john.doe",
        "action": "CREATE",
        "object_type": "Customer",
        "object_id": "cus_1",
    }
    assert params.search_term == "hello world"
    assert (params.page_size, params.from_offset) == (100, 9900)
    assert params.filters() == {
        **params.exact,
        "ip_address": "10.0.0.1",
        "start_time": "2026-01-01T00:00:00.000000Z",
        "end_time": "2026-01-02T00:00:00.000000Z",
        "search_term": "hello world",
    }


@pytest.mark.parametrize("name", ["userid", "user", "q", "page", "limit", "offset", "sort", ""])
def test_unknown_parameter_is_refused_by_name(name: str) -> None:
    error = refused([(name, "x")])
    assert error.field == name
    assert "is not a parameter" in error.message and "user_id" in error.message


@pytest.mark.parametrize("name", SEARCH_PARAMETERS)
def test_repeated_parameter_is_refused(name: str) -> None:
    value = "10" if name in {"page_size", "from_offset"} else "x"
    error = refused([(name, value), (name, value)])
    assert error.field == name
    assert "more than once" in error.message


@pytest.mark.parametrize(
    "name",
    ["user_id", "username", "action", "object_type", "object_id", "ip_address", "search_term"],
)
def test_empty_value_is_refused(name: str) -> None:
    assert refused([(name, "")]).field == name


def test_blank_search_term_is_refused() -> None:
    assert refused([("search_term", "   ")]).field == "search_term"


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("user_id", 256),
        ("username", 256),
        ("action", 64),
        ("object_type", 256),
        ("object_id", 256),
        ("search_term", MAX_SEARCH_TERM),
    ],
)
def test_over_long_values_are_refused_at_the_limit(name: str, limit: int) -> None:
    assert parse_search([(name, "x" * limit)])
    error = refused([(name, "x" * (limit + 1))])
    assert error.field == name
    assert f"at most {limit}" in error.message


def test_error_message_bounds_and_escapes_the_value() -> None:
    error = refused([("page_size", "1'\n" + "9" * 500)])
    assert "\n" not in error.message
    assert len(error.message) < 200


@pytest.mark.parametrize(
    "value", ["0", "101", "-1", "1.0", "+5", " 5", "5 ", "5\n", "ten", "0x10", "٣"]
)
def test_page_size_must_be_1_to_100(value: str) -> None:
    assert refused([("page_size", value)]).field == "page_size"


@pytest.mark.parametrize("value", ["1", "100", "007"])
def test_page_size_in_range_is_accepted(value: str) -> None:
    assert parse(page_size=value).page_size == int(value)


def test_from_offset_plus_page_size_stays_within_10000() -> None:
    assert parse(from_offset="9980", page_size="20").from_offset == 9980
    assert parse(from_offset="9999", page_size="1").from_offset == 9999
    error = refused([("from_offset", "9990"), ("page_size", "20")])
    assert error.field == "from_offset" and "next" in error.message
    assert refused([("from_offset", "9981")]).field == "from_offset"  # default page_size 20
    assert refused([("from_offset", "10000"), ("page_size", "1")]).field == "from_offset"
    assert refused([("from_offset", "-1")]).field == "from_offset"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04T05:06:07Z", dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06:07", dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),  # naive = UTC
        ("2026-03-04 05:06:07", dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06:07.123456Z", dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)),
        ("2026-03-04T07:06:07+02:00", dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-03T23:36:07-05:30", dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06Z", dt.datetime(2026, 3, 4, 5, 6, tzinfo=UTC)),
        ("20260304T050607Z", dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04", dt.datetime(2026, 3, 4, tzinfo=UTC)),
    ],
)
def test_start_time_accepts_iso_8601(value: str, expected: dt.datetime) -> None:
    assert parse(start_time=value).start == TimeBound(expected)


def test_a_date_alone_as_end_time_covers_that_whole_day() -> None:
    end = parse(end_time="2026-01-31").end
    assert end == TimeBound(dt.datetime(2026, 2, 1, tzinfo=UTC), inclusive=False)
    # The same day as both bounds is that one day, not an error.
    params = parse(start_time="2026-01-31", end_time="2026-01-31")
    assert params.start == TimeBound(dt.datetime(2026, 1, 31, tzinfo=UTC))


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "2026-01-01T25:00:00Z",
        "2026-01-01T00:00:00+25:00",
        "1700000000",
        "2026-01-01T00:00:00Z" + " " * 60,
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_times_are_refused(value: str) -> None:
    for name in ("start_time", "end_time"):
        error = refused([(name, value)])
        assert error.field == name and "ISO 8601" in error.message


def test_start_after_end_is_refused_and_equal_is_fine() -> None:
    error = refused([("start_time", "2026-01-02T00:00:00Z"), ("end_time", "2026-01-01T23:59:59Z")])
    assert error.field == "start_time" and "after end_time" in error.message
    # Equal instants given in different zones are one instant: accepted.
    assert parse(start_time="2026-01-01T12:00:00+02:00", end_time="2026-01-01T10:00:00Z")


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("10.1.2.3/16", "10.1.0.0/16"),
        ("2001:db8::/32", "2001:db8::/32"),
        # IPv4-mapped IPv6 is the IPv4 address it is, as in the index's ip type.
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::ffff:102:304", "1.2.3.4"),
        ("::ffff:1.2.3.4/120", "1.2.3.0/24"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::/80", "::/80"),
    ],
)
def test_ip_address_takes_an_address_or_a_network(value: str, normalised: str) -> None:
    assert parse(ip_address=value).ip_address == normalised


def test_an_ipv4_mapped_network_with_a_short_prefix_is_refused_not_guessed() -> None:
    # ::/24 to IPv6, very likely meant as 1.2.3.0/24: neither is assumed.
    error = refused([("ip_address", "::ffff:1.2.3.0/24")])
    assert error.field == "ip_address"
    assert "'::ffff:1.2.3.0/24'" in error.message and "96" in error.message


@pytest.mark.parametrize(
    "value",
    ["10.0.0", "10.0.0.256", "host.ex", "10.0.0.0/33", " 10.0.0.1", "fe80::1%eth0", "01.2.3.4"],
)
def test_bad_ip_address_is_refused(value: str) -> None:
    assert refused([("ip_address", value)]).field == "ip_address"


def test_cursor_round_trips_and_carries_the_offset() -> None:
    cursor = Cursor(1_767_268_800_000_700_000, "0190d2a4-5b6c-7d8e-9f00-112233445566", 10_020)
    text = encode_cursor(cursor)
    assert text.isascii() and "=" not in text
    assert decode_cursor(text) == cursor
    params = parse(cursor=text, page_size="50")
    assert params.cursor == cursor
    assert params.offset == 10_020


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "not a cursor",
        "eyJ2IjoxfQ",  # {"v":1}
        # {"v":1,"t":"1","id":"0190d2a4-5b6c-7d8e-9f00-112233445566","o":20}: t not a number
        "eyJ2IjoxLCJ0IjoiMSIsImlkIjoiMDE5MGQyYTQtNWI2Yy03ZDhlLTlmMDAtMTEyMjMzNDQ1NTY2IiwibyI6MjB9",
        "W10",  # []
        "A" * 300,
    ],
)
def test_bad_cursor_is_refused(text: str) -> None:
    error = refused([("cursor", text)])
    assert error.field == "cursor"


def test_tampered_cursor_fields_are_refused() -> None:
    good = Cursor(5, "0190d2a4-5b6c-7d8e-9f00-112233445566", 20)
    for bad in (
        Cursor(5, "not-a-uuid", 20),
        Cursor(5, good.log_id, 0),
        Cursor(2**63, good.log_id, 20),
    ):
        assert refused([("cursor", encode_cursor(bad))]).field == "cursor"


def test_cursor_and_from_offset_do_not_combine() -> None:
    text = encode_cursor(Cursor(5, "0190d2a4-5b6c-7d8e-9f00-112233445566", 20))
    assert refused([("cursor", text), ("from_offset", "0")]).field == "from_offset"


def test_search_term_length_counts_the_value_as_given() -> None:
    assert parse(search_term=" " + "x" * (MAX_SEARCH_TERM - 1)).search_term == "x" * 99
    error = refused([("search_term", " " + "x" * MAX_SEARCH_TERM + " ")])
    assert error.field == "search_term"
