"""The client's address behind trusted proxies: one parser for ``X-Forwarded-For`` and
RFC 7239 ``Forwarded``, and one rule to walk their hops.

The rule: start at the direct peer; while the current hop is a trusted proxy, step one
element to the left; the first hop that is not a trusted proxy is the client. Only the
header the deployment names is read (``AUDIT_LOG_FORWARDED_HEADER``): the other one may
have come from the client untouched, since a proxy appends only to the header it writes.
A hop that cannot be read (malformed, obfuscated, past the hop limit) ends the walk with no
address and a note saying why: guessing past it would trust what the client wrote.

The header is read from the right, one element at a time, and only as far as the walk
goes. Whatever is left of the client's hop was written by the client, so it is never
parsed: junk there (an open quote, an element without ``for=``, a megabyte of text) must
not be able to erase the address the trusted proxy appended. The work is linear in the
part scanned.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from audit_logging.errors import ConfigurationError
from audit_logging.settings import parse_forwarded_header

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Hops walked before giving up (a real chain has a handful); counted from the right, so
# hops the walk never reaches do not count.
MAX_HOPS: Final = 64
_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")


class _Unreadable(Exception):  # noqa: N818 - internal signal, carries the note
    pass


def parse_trusted_proxies(proxies: Iterable[str]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for proxy in proxies:
        try:
            network = ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            raise ConfigurationError(
                "trusted_proxies", f"{proxy!r} is not an IP address or network"
            ) from None
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            # Addresses are compared as IPv4 once normalised; so are such networks.
            first = normalized(network.network_address)
            network = ipaddress.ip_network(f"{first}/{network.prefixlen - 96}")
        networks.append(network)
    return tuple(networks)


def normalized(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:1.2.3.4``) as the IPv4 address it is."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """Finds a request's client address under one deployment's proxy options."""

    def __init__(self, trusted_proxies: Iterable[str], header: str = "X-Forwarded-For") -> None:
        self.trusted = parse_trusted_proxies(trusted_proxies)
        # Lower case: the middleware keys headers that way.
        self.header = parse_forwarded_header("forwarded_header", header).lower()

    def __call__(self, peer: str | None, headers: Mapping[str, str]) -> tuple[str | None, str]:
        """The client's address and, if it had to be dropped, why."""
        if not peer:
            return None, ""
        try:
            address = normalized(ipaddress.ip_address(peer))
        except ValueError:
            return None, "the peer address is not an IP address"
        if not self._is_trusted(address):
            return str(address), ""
        value = headers.get(self.header)
        if not value:
            return str(address), ""
        if self.header == "forwarded":
            elements = _forwarded_elements_from_right(value)
        else:
            elements = _xff_hops_from_right(value)
        try:
            for walked, element in enumerate(elements, start=1):
                if walked > MAX_HOPS:
                    raise _Unreadable(f"more than {MAX_HOPS} hops in {self.header}")
                hop = _for_value(element) if self.header == "forwarded" else element
                address = _node_address(hop)
                if not self._is_trusted(address):
                    break
        except _Unreadable as exc:
            return None, f"a trusted proxy forwarded {exc}"
        return str(address), ""

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)


def _xff_hops_from_right(value: str) -> Iterator[str]:
    """The hops of an ``X-Forwarded-For`` value, rightmost first."""
    end = len(value)
    while True:
        start = value.rfind(",", 0, end)
        yield value[start + 1 : end].strip()
        if start < 0:
            return
        end = start


def _forwarded_elements_from_right(value: str) -> Iterator[str]:
    """The elements of a ``Forwarded`` value, rightmost first, split at commas outside
    quoted strings.

    Scanning leftwards, a quote closes the quoted string it is in unless an odd run of
    backslashes precedes it (then it is a quoted-pair). The proxies' part on the right is
    well-formed, so it splits exactly as a left-to-right reading would; each element is
    then checked by :func:`_for_value`, which catches a split that only malformed text
    could have produced.
    """
    end = len(value)
    index = end - 1
    quoted = False
    while index >= 0:
        char = value[index]
        if char == '"':
            run = _backslashes_before(value, index) if quoted else 0
            if run % 2:
                index -= run  # the escaped quote and its backslashes are text
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            yield value[index + 1 : end]
            end = index
        index -= 1
    if quoted:
        raise _Unreadable("an unterminated quoted string in Forwarded")
    yield value[:end]


def _backslashes_before(text: str, index: int) -> int:
    run = 0
    while index - run > 0 and text[index - run - 1] == "\\":
        run += 1
    return run


def _for_value(element: str) -> str:
    """The ``for=`` value of one ``Forwarded`` element.

    Quoted strings are read as RFC 7230 says: ``;`` and ``for=`` inside them are text, not
    structure. An element without exactly one ``for=`` is unreadable.
    """
    found: list[str] = []
    for pair in _split_quoted(element, ";"):
        name, sep, raw = pair.partition("=")
        if not sep:
            if pair.strip():
                raise _Unreadable("a Forwarded pair without '='")
            continue
        if name.strip().lower() == "for":
            found.append(_unquote(raw.strip()))
    if len(found) != 1:
        raise _Unreadable(f"a Forwarded element with {len(found)} for= parameters")
    return found[0]


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside quoted strings (backslash escapes honoured)."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        raise _Unreadable("an unterminated quoted string in Forwarded")
    parts.append(text[start:])
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    if '"' in value:
        raise _Unreadable("a malformed quoted value in Forwarded")
    return value


def _node_address(hop: str) -> IPAddress:
    """The address of one hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[v6]``, ``[v6]:80`` or
    bare ``v6`` (as X-Forwarded-For writes it)."""
    hop = hop.strip()
    if hop.lower() == "unknown" or hop.startswith("_"):
        raise _Unreadable("an obfuscated or unknown address")
    host, port = hop, ""
    if hop.startswith("["):
        host, sep, rest = hop[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _Unreadable("an invalid address")
        port = rest[1:] if rest else ""
        if rest and not port:
            raise _Unreadable("an invalid address")
    elif hop.count(":") == 1:
        host, _, port = hop.partition(":")
    if port and not (port.isascii() and (port.isdigit() or port.startswith("_"))):
        raise _Unreadable("an invalid address")
    if "%" in host or not host.isascii():
        raise _Unreadable("an invalid address")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise _Unreadable("an invalid address") from None
    if hop.startswith("[") and address.version != 6:
        raise _Unreadable("an invalid address")
    return normalized(address)


def port_number(value: object) -> int | None:
    """A port as a server or a forwarding hop gives it, None when absent or not one: ASCII
    digits only (str.isdigit also takes '²', which int() refuses, and '٤'), at most five."""
    text = str(value) if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else None
