"""A loopback HTTP proxy that breaks answers on purpose, between an API engine and its server.

One request a connection (each answer is sent with `Connection: close`). The fault applies to
every request while it is set:

- `slow`: nothing of the answer is passed on until `release()` (the first byte is late);
- `error`: HTTP 500 with OpenAI's error body, the server never asked;
- `reset`: the answer's head and its first piece of body pass, then the connection is reset;
- `html`: the answer passes with `Content-Type: text/html` (a captive portal, a wrong path).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

__all__ = ["Fault", "FaultProxy", "proxying"]

Fault = Literal["none", "slow", "error", "reset", "html"]
_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Content-Length: 62\r\nConnection: close\r\n\r\n"
    b'{"error": {"message": "The server had an error", "type": "x"}}'
)
_FIRST_PIECE = 64
"""Body bytes passed before a reset: a first event or a first bit of audio, not the whole."""


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.fault: Fault = "none"
        self.requests = 0
        self.reset_after = _FIRST_PIECE
        """Body bytes a `reset` answer passes before the reset."""
        self.reset_after_events: int | None = None
        """Instead: server-sent events a `reset` answer passes (whole) before the reset."""
        self._released = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def release(self) -> None:
        """Let held (`slow`) answers through."""
        self._released.set()

    def serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(client,), name="fault-relay")
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stopping.set()
        self.release()
        with contextlib.suppress(OSError):  # wakes the accept (close alone does not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _relay(self, client: socket.socket) -> None:
        try:
            self._answer(client)
        except OSError:
            pass  # the engine hung up first (its budget ran out): nothing more to pass on
        finally:
            client.close()

    def _answer(self, client: socket.socket) -> None:
        request = _read_request(client)
        if request is None:
            return
        self.requests += 1
        fault = self.fault
        if fault == "error":
            client.sendall(_ERROR)
            return
        with socket.create_connection(self.upstream) as server:
            server.sendall(request)
            head, body = _read_head(server)
            if fault == "slow":
                self._released.wait()
            client.sendall(_rewrite(head, html=fault == "html"))
            if fault == "reset":
                client.sendall(self._first_piece(server, body))
                # SO_LINGER 0: close sends a TCP reset, not an orderly end.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            while body:
                client.sendall(body)
                body = server.recv(65536)

    def _first_piece(self, server: socket.socket, body: bytes) -> bytes:
        """What a `reset` answer passes of the body: some bytes, or some whole events."""
        events = self.reset_after_events
        while (
            len(body) < self.reset_after if events is None else body.count(b"data:") <= events
        ) and (more := server.recv(65536)):
            body += more
        if events is None:
            return body[: self.reset_after]
        ends = [i for i in range(len(body)) if body.startswith(b"data:", i)]
        return body[: ends[events]] if len(ends) > events else body


def _read_request(client: socket.socket) -> bytes | None:
    """The whole request (head and Content-Length body), with `Connection: close`."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = client.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += client.recv(65536)
    return _rewrite(head + b"\r\n\r\n", html=False) + body


def _read_head(server: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = server.recv(65536)
        if not more:
            break
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", body


def _rewrite(head: bytes, *, html: bool) -> bytes:
    """`head` with `Connection: close` (and, for `html`, a page's content type)."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [lines[0]]
    for line in lines[1:]:
        name = line.partition(b":")[0].strip().lower()
        if name == b"connection" or (html and name == b"content-type"):
            continue
        kept.append(line)
    kept.append(b"Connection: close")
    if html:
        kept.append(b"Content-Type: text/html; charset=utf-8")
    return b"\r\n".join(kept) + b"\r\n\r\n"


@contextmanager
def proxying(upstream_url: str) -> Iterator[tuple[FaultProxy, str]]:
    """A proxy in front of `upstream_url` (`http://127.0.0.1:N/v1`), and its own URL."""
    rest = upstream_url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    proxy = FaultProxy((host, int(port)))
    thread = threading.Thread(target=proxy.serve, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{proxy.port}/{path}"
    finally:
        proxy.close()
        thread.join(timeout=10)
