"""AUDIT_LOG_METRICS_NETWORKS: the networks whose peers may scrape the API's /metrics without
a token. A network here opens a door, so anything doubtful is refused, naming the setting."""

from __future__ import annotations

import ipaddress

import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings

SETTING = "AUDIT_LOG_METRICS_NETWORKS"


def networks(raw: object) -> tuple[object, ...]:
    settings = Settings.load(environ={}, env_file=None, metrics_networks=raw)
    return settings.metrics_networks


def test_unset_is_no_network() -> None:
    assert Settings.load(environ={}, env_file=None).metrics_networks == ()
    assert Settings.load(environ={SETTING: "  "}, env_file=None).metrics_networks == ()


def test_comma_separated_networks_and_addresses_from_the_environment() -> None:
    settings = Settings.load(
        environ={SETTING: "10.0.0.0/8, 192.168.1.7 ,2001:db8::/32"}, env_file=None
    )
    assert settings.metrics_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )


def test_a_list_of_strings_or_networks_as_keyword() -> None:
    ten = ipaddress.ip_network("10.0.0.0/8")
    assert networks(["10.0.0.0/8", ten]) == (ten, ten)


def test_an_ipv4_mapped_network_is_the_ipv4_network_it_is() -> None:
    assert networks("::ffff:10.0.0.0/104") == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("10.0.0.1/8", "'10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?"),
        ("10.0.0.0/8,", "empty entry"),
        ("10.0.0.0/8,,10.1.0.0/16", "empty entry"),
        ("prometheus.local", "'prometheus.local' is not an IP network"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP network"),
        ("10.0.0.0/8 192.168.0.0/16", "is not an IP network"),
        ("\u0661\u0660.0.0.0/8", "is not an IP network"),
        ("10.0.0.0/8\n", None),  # surrounding whitespace is stripped: accepted
        (",".join(["10.0.0.0/8"] * 65), "holds 65 networks, more than 64"),
        (42, "got int"),
        ([42], "an entry of type int"),
    ],
)
def test_bad_values_are_refused_naming_the_setting_and_the_value(
    raw: object, words: str | None
) -> None:
    if words is None:
        assert networks(raw)
        return
    with pytest.raises(ConfigurationError) as raised:
        networks(raw)
    assert raised.value.setting == SETTING
    assert str(raised.value).startswith(f"Setting {SETTING}: ")
    assert words in str(raised.value)


def test_a_huge_value_is_echoed_bounded() -> None:
    with pytest.raises(ConfigurationError) as raised:
        networks("1" * 100_000)
    assert len(str(raised.value)) < 200
