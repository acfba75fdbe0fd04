"""A TCP proxy a test can cut and restore: makes one service unreachable, or hung, for the
client under test without touching the shared service itself (other tests keep using it).

``down()`` refuses new connections and cuts the open ones (a service that is gone);
``hang()`` cuts the open ones and holds new ones unanswered (a SIGSTOPped broker) until
``forward()``. rstream opens its first (locator) connection through the proxy and publishes
on a connection to the stream's leader as the broker advertises it: cutting the locator
connection is what makes a publisher reconnect, and reconnecting goes through the proxy.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from tests._ports import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.connections = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._hanging = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open and the held ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._cut_open()
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            cut(sock)

    def hang(self) -> None:
        """Cut the open connections and hold new ones, unanswered, until ``forward()``."""
        with self._lock:
            self._hanging = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            cut(sock)

    def forward(self) -> None:
        """Serve new connections again (the held ones stay held)."""
        with self._lock:
            self._hanging = False

    def _cut_open(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            cut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            # Under the lock: a hang() or down() meanwhile cuts this connection too.
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    return
                if self._hanging:
                    self._held.append(client)
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
                self._sockets |= {client, upstream}
                self.connections += 1
            pumps = [
                threading.Thread(target=self._pump, args=(a, b), daemon=True)
                for a, b in ((client, upstream), (upstream, client))
            ]
            for pump in pumps:
                pump.start()
            threading.Thread(target=self._reap, args=(pumps, client, upstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _reap(self, pumps: list[threading.Thread], *sockets: socket.socket) -> None:
        for pump in pumps:
            pump.join()
        with self._lock:
            self._sockets.difference_update(sockets)
        for sock in sockets:
            sock.close()


def cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextlib.contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    proxy.up()
    try:
        yield proxy
    finally:
        proxy.down()
