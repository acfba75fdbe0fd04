"""Local TCP for tests: a port nothing listens on, whether one answers, and one process's
own connections to a port (to cut them as a network failure would)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (until a test binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def own_connections(port: int, pid: int | None = None) -> list[str]:
    """The local ports of this process's (or ``pid``'s) established connections to ``port``."""
    assert shutil.which("ss"), "this test needs iproute2's ss: apt-get install iproute2"
    owner = os.getpid() if pid is None else pid
    listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    return [match.group(1) for line in listing.splitlines()
            if f"pid={owner}," in line and (match := re.search(r":(\d+)\s+\S+:\d+\s", line))]


def cut_own_connections(port: int, pid: int | None = None) -> list[str]:
    """Cut this process's (or ``pid``'s) TCP connections to ``port`` and nobody else's (ss -K,
    iproute2, as root), as a network failure would; the local ports it cut."""
    mine = own_connections(port, pid)
    assert mine, f"process {os.getpid() if pid is None else pid} has no connection to {port} to cut"
    for local in mine:
        subprocess.run(["ss", "-K", "state", "established",
                        f"( sport = :{local} and dport = :{port} )"],
                       check=True, capture_output=True)
    return mine
