"""The client address behind trusted proxies: forgeries from issue 8 and the parser's cases."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.middleware._forwarded import MAX_HOPS, ClientAddress
from audit_logging.settings import Settings
from tests.middleware._drive import RUNNERS, SETTINGS, Headers

PROXY = "10.0.0.1"
TRUSTED = ["10.0.0.0/8"]


def client_ip(runner: str, headers: Headers, **options: Any) -> tuple[str | None, str | None]:
    options.setdefault("trusted_proxies", TRUSTED)
    record = RUNNERS[runner](headers, client=PROXY, **options).record
    return record["ip_address"], (record["extra"] or {}).get("ip_address_note")


@pytest.mark.parametrize("runner", RUNNERS)
def test_client_sent_forwarded_does_not_beat_the_proxys_x_forwarded_for(runner: str) -> None:
    # The client sent Forwarded; the trusted proxy wrote X-Forwarded-For.
    headers = [("Forwarded", "for=6.6.6.6"), ("X-Forwarded-For", "203.0.113.5")]
    assert client_ip(runner, headers) == ("203.0.113.5", None)


@pytest.mark.parametrize("runner", RUNNERS)
def test_client_sent_x_forwarded_for_is_ignored_when_the_proxy_writes_forwarded(
    runner: str,
) -> None:
    headers = [("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=203.0.113.5")]
    assert client_ip(runner, headers, forwarded_header="Forwarded") == ("203.0.113.5", None)


@pytest.mark.parametrize("runner", RUNNERS)
def test_elements_without_a_space_are_two_elements(runner: str) -> None:
    headers = [("Forwarded", "for=6.6.6.6,for=1.2.3.4")]
    assert client_ip(runner, headers, forwarded_header="Forwarded") == ("1.2.3.4", None)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    "value",
    [
        'for=1.2.3.4;ext="x;for=6.6.6.6"',
        'for=1.2.3.4;ext="a, for=6.6.6.6"',
        'for="1.2.3.4";ext="\\";for=6.6.6.6"',
    ],
)
def test_for_inside_a_quoted_value_is_not_picked_up(runner: str, value: str) -> None:
    headers = [("Forwarded", value)]
    assert client_ip(runner, headers, forwarded_header="Forwarded") == ("1.2.3.4", None)


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_setting_names_the_header(runner: str) -> None:
    settings = Settings.load(environ={"AUDIT_LOG_FORWARDED_HEADER": "forwarded"},
                             env_file=None, hash_key="test-hash-key-0123456789")
    headers = [("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=203.0.113.5")]
    assert client_ip(runner, headers, settings=settings) == ("203.0.113.5", None)
    # The keyword wins over the setting.
    assert client_ip(runner, headers, settings=settings,
                     forwarded_header="X-Forwarded-For") == ("6.6.6.6", None)


def test_a_bad_forwarded_header_keyword_is_named() -> None:
    with pytest.raises(ConfigurationError, match="forwarded_header.*'X-Real-IP'"):
        RUNNERS["asgi"]([], forwarded_header="X-Real-IP")


def find(headers: dict[str, str], *, header: str = "X-Forwarded-For",
         peer: str = PROXY, trusted: tuple[str, ...] = ("10.0.0.0/8",)) -> tuple[str | None, str]:
    return ClientAddress(trusted, header)(peer, headers)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('for="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ("for=192.0.2.43:8080", "192.0.2.43"),
        ('For="192.0.2.43:_port";proto=https;by=10.0.0.1', "192.0.2.43"),
        ("for=192.0.2.43, for=10.0.0.7", "192.0.2.43"),  # walks through a trusted hop
        ("for=6.6.6.6, for=192.0.2.43, for=10.0.0.7", "192.0.2.43"),
        ('for="[::ffff:192.0.2.9]:80"', "192.0.2.9"),
        ("for=10.0.0.9, for=10.0.0.8", "10.0.0.9"),  # all trusted: the leftmost
        ("  for = 192.0.2.1 ", "192.0.2.1"),
    ],
)
def test_forwarded_values(value: str, expected: str) -> None:
    assert find({"forwarded": value}, header="Forwarded") == (expected, "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.1:8080", "192.0.2.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("6.6.6.6, 192.0.2.1,10.1.1.1", "192.0.2.1"),
        # Two header lines, joined by the server.
        ("6.6.6.6, 192.0.2.1", "192.0.2.1"),
    ],
)
def test_x_forwarded_for_values(value: str, expected: str) -> None:
    assert find({"x-forwarded-for": value}) == (expected, "")


@pytest.mark.parametrize(
    ("header", "value", "note"),
    [
        ("Forwarded", "for=_hidden", "obfuscated"),
        ("Forwarded", "for=unknown", "obfuscated"),
        ("Forwarded", "for=192.0.2.1, for=_proxy2", "obfuscated"),
        ("X-Forwarded-For", "unknown", "obfuscated"),
        ("X-Forwarded-For", "192.0.2.1, 999.1.1.1", "invalid"),
        ("X-Forwarded-For", "192.0.2.1,", "invalid"),
        ("X-Forwarded-For", "[192.0.2.1]:80", "invalid"),
        ("X-Forwarded-For", "fe80::1%eth0", "invalid"),
        ("Forwarded", 'for="192.0.2.1', "unterminated"),
        ("Forwarded", "proto=https", "0 for="),
        ("Forwarded", "for=192.0.2.1;for=192.0.2.2", "2 for="),
        ("Forwarded", "for", "without '='"),
    ],
)
def test_an_unreadable_hop_stops_the_walk_with_no_address(
    header: str, value: str, note: str
) -> None:
    ip, why = find({header.lower(): value}, header=header)
    assert ip is None
    assert note in why


def test_an_unreadable_hop_left_of_the_client_does_not_matter() -> None:
    # Only hops up to the first untrusted one are read.
    assert find({"x-forwarded-for": "garbage, 192.0.2.1"}) == ("192.0.2.1", "")
    assert find({"forwarded": "for=_x, for=192.0.2.1"}, header="Forwarded") == ("192.0.2.1", "")


# Junk the client writes left of what the trusted proxy appends (issue: the whole header
# used to be parsed first, so this junk erased the address).
CLIENT_JUNK_LEFT = [
    ("X-Forwarded-For", "a" * 8200 + " , 6.6.6.6"),
    ("X-Forwarded-For", "1," * 64 + " 6.6.6.6"),
    ("Forwarded", 'for="x, for=6.6.6.6'),
    ("Forwarded", "proto=http, for=6.6.6.6"),
    ("Forwarded", "x" * 100_000 + ";for=" + "=;" * 1000 + ",for=6.6.6.6"),
    ("Forwarded", 'for="a\\", for=6.6.6.6'),  # an escaped quote: never closed, read left to right
]


@pytest.mark.parametrize(("header", "value"), CLIENT_JUNK_LEFT)
def test_client_junk_left_of_the_proxys_hop_does_not_erase_the_address(
    header: str, value: str
) -> None:
    assert find({header.lower(): value}, header=header) == ("6.6.6.6", "")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(("header", "value"), CLIENT_JUNK_LEFT)
def test_client_junk_left_of_the_proxys_hop_through_the_middleware(
    runner: str, header: str, value: str
) -> None:
    assert client_ip(runner, [(header, value)], forwarded_header=header) == ("6.6.6.6", None)


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_open_quote_on_the_clients_own_header_line_does_not_matter(runner: str) -> None:
    # Two lines, joined with "," by the server: the client's, then the proxy's.
    headers = [("Forwarded", 'for="6.6.6.6'), ("Forwarded", "for=203.0.113.5")]
    assert client_ip(runner, headers, forwarded_header="Forwarded") == ("203.0.113.5", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Quotes read from the right: an escaped quote, an escaped backslash, both.
        ('for="1.2.3.4";ext="a\\"b", for=10.0.0.3', "1.2.3.4"),
        ('for="[2001:db8::1]";ext="a\\\\", for=10.0.0.3', "2001:db8::1"),
        ('for="1.2.3.4";ext="\\\\\\", x", for=10.0.0.3', "1.2.3.4"),
        ('junk"", for="1.2.3.4";ext=",", for=10.0.0.3', "1.2.3.4"),
    ],
)
def test_quoted_strings_read_from_the_right(value: str, expected: str) -> None:
    assert find({"forwarded": value}, header="Forwarded") == (expected, "")


def test_an_unreadable_hop_reached_by_the_walk_still_drops_the_address() -> None:
    # The client's hop itself is junk: walked, so read, so no address.
    ip, why = find({"forwarded": 'for="x, for=10.0.0.3'}, header="Forwarded")
    assert (ip, "unterminated" in why) == (None, True)
    ip, why = find({"forwarded": "proto=http, for=10.0.0.3"}, header="Forwarded")
    assert (ip, "0 for=" in why) == (None, True)
    ip, why = find({"x-forwarded-for": "1" * 100_000 + ", 10.0.0.3"})
    assert (ip, "invalid" in why) == (None, True)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
def test_the_hop_limit_counts_hops_walked(header: str) -> None:
    hop = "10.0.0.2" if header == "X-Forwarded-For" else "for=10.0.0.2"
    assert find({header.lower(): ",".join([hop] * MAX_HOPS)}, header=header) == ("10.0.0.2", "")
    ip, why = find({header.lower(): ",".join([hop] * (MAX_HOPS + 1))}, header=header)
    assert (ip, f"more than {MAX_HOPS} hops" in why) == (None, True)
    # Hops left of the client's are never walked, however many.
    many = ",".join([hop] * 10_000 + [hop.replace("10.0.0.2", "192.0.2.1")])
    assert find({header.lower(): many}, header=header) == ("192.0.2.1", "")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-For", "9" * 2_000_000),
        ("X-Forwarded-For", "," * 2_000_000 + "192.0.2.1"),
        ("Forwarded", '"' * 2_000_000),
        ("Forwarded", '\\"' * 1_000_000),
        ("Forwarded", '"' + "\\" * 2_000_000 + '"'),
        ("Forwarded", '"\\"' * 700_000 + ", for=10.0.0.3"),
        ("Forwarded", "for=" + "=" * 2_000_000),
    ],
)
def test_work_is_linear_in_the_part_scanned(header: str, value: str) -> None:
    # Megabytes take milliseconds; a quadratic scan would take hours. The thread's join is a
    # hang guard far above either, not a speed target (bench/ owns those).
    found: list[tuple[str | None, str]] = []
    worker = threading.Thread(
        target=lambda: found.append(find({header.lower(): value}, header=header)), daemon=True
    )
    worker.start()
    worker.join(120)
    assert found, "the header scan did not finish"


def test_untrusted_or_odd_peers() -> None:
    assert find({"x-forwarded-for": "6.6.6.6"}, peer="192.0.2.1") == ("192.0.2.1", "")
    assert find({"x-forwarded-for": "6.6.6.6"}, peer="::ffff:192.0.2.1") == ("192.0.2.1", "")
    # A mapped peer address is compared as the IPv4 address it is.
    assert find({"x-forwarded-for": "192.0.2.5"}, peer="::ffff:10.0.0.1") == ("192.0.2.5", "")
    assert find({}, peer="not-an-ip")[0] is None
    assert find({}, peer="")[0] is None


@pytest.mark.parametrize("trusted", ["::ffff:10.0.0.1", "::ffff:10.0.0.0/104"])
@pytest.mark.parametrize("peer", ["10.0.0.1", "::ffff:10.0.0.1"])
def test_trusted_proxy_given_as_mapped_address_is_normalised_too(trusted: str, peer: str) -> None:
    assert find({"x-forwarded-for": "::ffff:192.0.2.5"}, peer=peer,
                trusted=(trusted,)) == ("192.0.2.5", "")


def test_settings_forwarded_header() -> None:
    def load(value: str) -> str:
        return Settings.load(environ={"AUDIT_LOG_FORWARDED_HEADER": value},
                             env_file=None).forwarded_header

    assert Settings.load(environ={}, env_file=None).forwarded_header == "X-Forwarded-For"
    assert load("FORWARDED") == "Forwarded"
    assert load(" x-forwarded-for ") == "X-Forwarded-For"
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_FORWARDED_HEADER.*'X-Real-IP'"):
        load("X-Real-IP")
    assert SETTINGS.forwarded_header == "X-Forwarded-For"
