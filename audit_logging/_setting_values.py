"""The value types and checks of the settings: each parser takes the setting's name and a raw
value (a string from the environment, or a Python value from a keyword argument) and returns
the checked value, or raises a :class:`ConfigurationError` that names the setting."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from audit_logging.errors import ConfigurationError, shown


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


SESSION_KEY_MODES: Final = ("hash", "raw", "drop")
FORWARDED_HEADERS: Final = ("X-Forwarded-For", "Forwarded")
OBJECT_LOCK_MODES: Final = ("GOVERNANCE", "COMPLIANCE")
_BOOL_WORDS: Final = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
_INTEGER: Final = re.compile(r"-?[0-9]{1,18}", re.ASCII)
NAME_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
INDEX_PREFIX_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,100}$")
BUCKET_RE: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_str(setting: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigurationError(setting, f"must be a string, got {type(raw).__name__}")
    return raw


def parse_int(lo: int, hi: int) -> Callable[[str, Any], int]:
    def parse(setting: str, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigurationError(setting, f"must be an integer, got {raw!r}")
        if isinstance(raw, int):
            value = raw
        else:
            text = str(raw).strip()
            # ASCII digits only: int() would also take "1_000" and other scripts' digits.
            if not _INTEGER.fullmatch(text):
                raise ConfigurationError(
                    setting, f"must be an integer, got '{shown(str(raw))}'"
                ) from None
            value = int(text)
        if not lo <= value <= hi:
            raise ConfigurationError(setting, f"must be from {lo} to {hi}, got {value}")
        return value

    return parse


def parse_float(lo: float, hi: float) -> Callable[[str, Any], float]:
    def parse(setting: str, raw: Any) -> float:
        if isinstance(raw, bool):
            raise ConfigurationError(setting, f"must be a number, got {raw!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(setting, f"must be a number, got {raw!r}") from None
        if math.isnan(value) or not lo <= value <= hi:
            raise ConfigurationError(setting, f"must be from {lo:g} to {hi:g}, got {raw!r}")
        return value

    return parse


_DURATION_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
# ASCII digits only (str.isdigit and float() also take other scripts' digits), no exponent,
# no sign: "1e309", "nan", "-5" and "٣٠" are refused here rather than parsed.
_DURATION: Final = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,6}))?([smhd]?)", re.ASCII)


def duration_seconds(text: str) -> float:
    """``3600``, ``3600s``, ``30m``, ``1h``, ``1d`` or ``1.5h`` in seconds; NaN if it is none
    of those (callers check the range, which NaN never passes)."""
    found = _DURATION.fullmatch(text.strip()) if len(text) <= 32 else None
    if found is None:
        return math.nan
    whole, fraction, unit = found.groups()
    fraction = fraction or ""
    return (int(whole) + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)) * float(
        _DURATION_UNITS[unit]
    )


def parse_duration(lo: float, hi: float) -> Callable[[str, Any], float]:
    """Seconds, from a number of seconds or a duration with a unit (30m, 1h, 1d)."""

    def parse(setting: str, raw: Any) -> float:
        if isinstance(raw, bool):
            seconds = math.nan
        elif isinstance(raw, int | float):
            seconds = float(raw)
        else:
            seconds = duration_seconds(str(raw))
        if not lo <= seconds <= hi:
            raise ConfigurationError(
                setting,
                f"must be a duration from {lo:g} to {hi:g} seconds, as seconds (3600) or with "
                f"a unit (30m, 1h, 1d), got {str(raw)[:40]!r}",
            )
        return seconds

    return parse


def parse_choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    """One of ``choices``, whatever the case given, returned as spelled there."""

    def parse(setting: str, raw: Any) -> str:
        value = parse_str(setting, raw).strip().upper()
        for choice in choices:
            if value == choice.upper():
                return choice
        raise ConfigurationError(
            setting, f"must be one of {', '.join(choices)}, got '{shown(str(raw))}'"
        )

    return parse


def parse_bool(setting: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in _BOOL_WORDS:
        raise ConfigurationError(setting, f"must be true or false, got {raw!r}")
    return _BOOL_WORDS[word]


def parse_pattern(pattern: re.Pattern[str], what: str) -> Callable[[str, Any], str]:
    def parse(setting: str, raw: Any) -> str:
        value = parse_str(setting, raw)
        if not pattern.match(value):
            raise ConfigurationError(setting, f"must be {what}, got {value!r}")
        return value

    return parse


def parse_host(setting: str, raw: Any) -> str:
    value = parse_str(setting, raw).strip()
    if not value or any(c.isspace() or c in "/?#@" for c in value) or len(value) > 253:
        raise ConfigurationError(setting, f"must be a host name or address, got {raw!r}")
    return value


def parse_url(setting: str, raw: Any) -> str:
    value = parse_str(setting, raw).strip()
    if not re.match(r"^https?://[^\s/?#]+(/[^\s]*)?$", value):
        raise ConfigurationError(setting, f"must be an http:// or https:// URL, got {raw!r}")
    return value.rstrip("/")


def parse_s3_prefix(setting: str, raw: Any) -> str:
    value = parse_str(setting, raw)
    if value.startswith("/") or "//" in value or len(value) > 512 or not value.isprintable():
        raise ConfigurationError(setting, f"must be a relative S3 key prefix, got {raw!r}")
    # A prefix is a folder: always end it with "/" so keys never run into it.
    return value if value == "" or value.endswith("/") else value + "/"


def parse_session_mode(setting: str, raw: Any) -> str:
    value = parse_str(setting, raw).strip().lower()
    if value not in SESSION_KEY_MODES:
        raise ConfigurationError(
            setting, f"must be one of {', '.join(SESSION_KEY_MODES)}, got {raw!r}"
        )
    return value


def parse_forwarded_header(setting: str, raw: Any) -> str:
    """``X-Forwarded-For`` or ``Forwarded``, in that spelling, whatever the case given."""
    value = parse_str(setting, raw).strip().lower()
    for name in FORWARDED_HEADERS:
        if value == name.lower():
            return name
    raise ConfigurationError(setting, f"must be one of {', '.join(FORWARDED_HEADERS)}, got {raw!r}")


def parse_secret(min_length: int = 1) -> Callable[[str, Any], Secret]:
    def parse(setting: str, raw: Any) -> Secret:
        if isinstance(raw, Secret):
            raw = raw.get()
        if not isinstance(raw, str):
            raise ConfigurationError(setting, f"must be a string, got {type(raw).__name__}")
        if len(raw) < min_length:
            # The value is secret: say only how long it must be.
            raise ConfigurationError(setting, f"must be at least {min_length} characters long")
        return Secret(raw)

    return parse


def parse_path(setting: str, raw: Any) -> Path:
    if isinstance(raw, Path):
        return raw
    value = parse_str(setting, raw).strip()
    if not value or "\x00" in value:
        raise ConfigurationError(setting, f"must be a file system path, got {raw!r}")
    return Path(value).expanduser()


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_NETWORKS: Final = 64
_MAPPED_V4: Final = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_networks(setting: str, raw: Any) -> tuple[IPNetwork, ...]:
    """IP networks in CIDR form (``10.0.0.0/8``, ``2001:db8::/32``) or single addresses,
    comma-separated in one string or as a list. Strict, since a network here opens a door: an
    empty entry, host bits set (``10.0.0.1/8`` is most likely a typo) or more than
    :data:`MAX_NETWORKS` entries is refused. An IPv4-mapped IPv6 network becomes the IPv4
    network it is, as peer addresses are compared in IPv4 form."""
    if isinstance(raw, str):
        items: list[Any] = raw.split(",")
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise ConfigurationError(
            setting, f"must be IP networks, comma-separated, got {type(raw).__name__}"
        )
    if len(items) > MAX_NETWORKS:
        raise ConfigurationError(setting, f"holds {len(items)} networks, more than {MAX_NETWORKS}")
    networks: list[IPNetwork] = []
    for item in items:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            network = item
        elif isinstance(item, str):
            network = _network(setting, item.strip())
        else:
            raise ConfigurationError(
                setting, f"must be IP networks, got an entry of type {type(item).__name__}"
            )
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_V4):
            mapped = network.network_address.ipv4_mapped
            network = ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
        networks.append(network)
    return tuple(networks)


def _network(setting: str, text: str) -> IPNetwork:
    if not text:
        raise ConfigurationError(
            setting, "has an empty entry (two commas in a row, or one at an end)"
        )
    example = "an IP network in CIDR form such as 10.0.0.0/8, or an address"
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigurationError(setting, f"'{shown(text)}' is not {example}") from None
    raise ConfigurationError(setting, f"'{shown(text)}' has host bits set: did you mean {loose}?")
