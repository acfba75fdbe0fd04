"""A stand-in for a consumer's ``--metrics-port``: answers ``GET /readyz`` as it is told,
well or badly (too big, too slow, not JSON, never), for the readiness tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    chunk: int = 65536  # bytes sent at once
    pause: float = 0.0  # seconds between chunks
    send_headers: bool = True
    # Content-Length as sent (None: the body's length); a longer one keeps the client reading.
    length: int | None = None
    hang: bool = False  # after what is sent, keep the connection open and say nothing


class ReadyzServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> ReadyzServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        answer = self.answer
        with client:
            try:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    data = client.recv(4096)
                    if not data:
                        return
                    request += data
                self.requests.append(request)
                if answer.send_headers:
                    length = len(answer.body) if answer.length is None else answer.length
                    client.sendall(
                        f"HTTP/1.1 {answer.status} Answer\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode("ascii"))
                    for start in range(0, len(answer.body), answer.chunk):
                        if self._stop.is_set():
                            return
                        client.sendall(answer.body[start:start + answer.chunk])
                        if answer.pause:
                            time.sleep(answer.pause)
                if answer.hang:
                    self._stop.wait(120)
            except OSError:
                return  # the client hung up, as it should on a bad answer


@contextlib.contextmanager
def readyz_server(answer: Answer) -> Iterator[ReadyzServer]:
    server = ReadyzServer(answer).start()
    try:
        yield server
    finally:
        server.stop()
