"""Noticing that the server already replaced the client's address with one taken from a
forwarding header, before any middleware ran.

uvicorn does so by default (``--proxy-headers``, trusting ``--forwarded-allow-ips``,
127.0.0.1 and ::1 unless set): its ``ProxyHeadersMiddleware`` puts a hop of
``X-Forwarded-For`` in the scope's ``client``, as ``(text of the hop, its port or 0)``.
Hypercorn's ``ProxyFixMiddleware`` does the same when an app adds it. The middleware then
sees that hop as the TCP peer: whatever it trusts, the stored ``ip_address`` is the one
the server picked, which a local process, or the client itself when nothing in front
strips the header, can choose.

The rule: the peer (address and port) equals a hop of ``X-Forwarded-For`` or a ``for=`` of
``Forwarded`` in the same request, a hop written without a port counting as port 0. A real
TCP peer never has port 0, and every proxy we know writes hops without ports (nginx,
HAProxy, AWS ALB, Cloudflare); a direct client whose own address is in a header it forged
still has its real, non-zero port, so it does not match. A client that writes its own
``address:port`` in the header can at worst cause this one warning. gunicorn's WSGI workers
never rewrite ``REMOTE_ADDR`` from these headers (only from the PROXY protocol, which
carries the real peer and its port), so under them this notice stays silent.

One warning per process: the first request that shows it says enough, and each later one
would only repeat it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from audit_logging.middleware._forwarded import IPNetwork, port_number

library_logger = logging.getLogger("audit_logging")

# Past these, a header is not looked at: servers refuse bigger ones anyway, and the check
# must stay cheap whatever a client sends.
MAX_HEADER_CHARS: Final = 16 * 1024
MAX_HOPS: Final = 256
_FORWARDED_FOR: Final = re.compile(
    r'for\s*=\s*(?:"((?:[^"\\]|\\.){0,256})"|([^;,\s"]{0,256}))', re.IGNORECASE
)


class RewriteNotice:
    """Says once per process that the server rewrote the client's address."""

    def __init__(self) -> None:
        self.warned = False
        self._lock = threading.Lock()

    def __call__(
        self,
        peer: str | None,
        port: int | None,
        headers: Mapping[str, str],
        trusted: Iterable[IPNetwork] = (),
    ) -> bool:
        """Check one request; True if it showed a rewritten client (warned the first time)."""
        if self.warned or not peer:
            return False
        header = rewritten_from(peer, port, headers)
        if header is None:
            return False
        if not self._first():
            return True
        library_logger.warning(
            "The server replaced the client address with %s taken from %s before the audit "
            "middleware saw it, so ip_address is what the server chose, not the TCP peer: "
            "under uvicorn pass --no-proxy-headers (uvicorn.run(..., proxy_headers=False)), "
            "under gunicorn with uvicorn's worker --forwarded-allow-ips='', and list your "
            "own proxies in the middleware's trusted_proxies (now %s)",
            _quoted(peer, port),
            header,
            ", ".join(str(network) for network in trusted) or "none",
        )
        return True

    def _first(self) -> bool:
        """True for the one caller that gets to warn (requests run on many threads)."""
        with self._lock:
            first, self.warned = not self.warned, True
            return first

    def reset(self) -> None:
        with self._lock:
            self.warned = False


notice_rewritten_client: Final = RewriteNotice()


def rewritten_from(peer: str, port: int | None, headers: Mapping[str, str]) -> str | None:
    """The header (``X-Forwarded-For`` or ``Forwarded``) a hop of which is the peer; None
    also when the peer's port is unknown (then a direct client cannot be told apart)."""
    if port is None:
        return None
    wanted: tuple[str, int] | None = None
    for name, hops in (("X-Forwarded-For", _xff_hops), ("Forwarded", _forwarded_hops)):
        value = headers.get(name.lower())
        if not value or len(value) > MAX_HEADER_CHARS:
            continue
        if port and f":{port}" not in value:
            # A real peer (port > 0) can only match a hop written with its port: without
            # that text in the header nothing is parsed. Behind a proxy every request comes
            # this way for the life of the process, and parsing its hops cost ~30 us each.
            continue
        if wanted is None:
            wanted = (_canonical(peer), port)
        for count, hop in enumerate(hops(value)):
            if count >= MAX_HOPS:
                break
            host, hop_port = _host_port(hop)
            if (_canonical(host), hop_port) == wanted:
                return name
    return None


def _xff_hops(value: str) -> Iterator[str]:
    return (hop.strip() for hop in value.split(","))


def _forwarded_hops(value: str) -> Iterator[str]:
    for match in _FORWARDED_FOR.finditer(value):
        quoted, bare = match.groups()
        yield re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare


def _host_port(hop: str) -> tuple[str, int]:
    """A hop as servers split it: ``[v6]:port``, ``v4:port``, else the whole hop, port 0.
    The hop is the client's text: a port that is not one leaves the hop whole."""
    if hop.startswith("["):
        host, sep, rest = hop[1:].partition("]")
        port = port_number(rest[1:]) if sep and rest.startswith(":") else None
        if port is not None:
            return host, port
        return (host, 0) if sep and not rest else (hop, 0)
    if hop.count(":") == 1:
        host, _, text = hop.partition(":")
        port = port_number(text)
        if port is not None:
            return host, port
    return hop, 0


def _canonical(host: str) -> str:
    """An address in one spelling (``::FFFF:1.2.3.4`` as ``1.2.3.4``); other text as is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _quoted(peer: str, port: int | None) -> str:
    # The peer came from a header: bounded and escaped before it reaches a log line.
    return repr(peer[:64]) + (f" (port {port})" if port else "")
