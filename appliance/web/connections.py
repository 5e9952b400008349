"""Who may hold a connection to the web app: a cap per source address, a cap in all, and a
reserve of file descriptors the web app never touches.

Slow clients cost a descriptor each for as long as they stay. Without caps, 300 of them sending a
byte a second used up the process's descriptors, and then the SIP line, which shares the process,
could not open a socket for a new call. So a connection is refused (and closed at once) when its
source already holds `per_source`, when `total` are open, or when the process's open descriptors
have come within `fd_reserve` of its limit. pjsua2 polls its sockets with select(), which cannot
watch a descriptor above 1023, so raising the limit is no way out: the reserve is kept instead.

Behind a reverse proxy every client has the proxy's address, so `per_source` then caps the proxy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConnectionGate", "ConnectionLimits", "listening_socket", "open_descriptors"]

_log = logging.getLogger(__name__)
_PER_TURN = 16
"""Connections accepted in one turn of the event loop."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    per_source: int = 32
    """Connections one address may hold (a browser opens about six)."""
    total: int = 256
    """Connections open at once, from everyone."""
    fd_reserve: int = 128
    """Descriptors left free for SIP, RTP, recordings and the database."""
    request_s: float = 10.0
    """Seconds a connection has to send a whole request (head and body), from when it opens or
    its last response ended; a slower one is answered 408 and closed."""


def open_descriptors() -> int:
    """Descriptors this process has open (0 where the system does not say; past any limit
    when it has none left to look)."""
    try:
        return len(os.listdir("/proc/self/fd"))  # noqa: PTH208 - a count; no Path objects
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError:
        return sys.maxsize


def _descriptor_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(slots=True)
class _Held:
    source: str
    since: float
    """When it began waiting for a request (loop seconds)."""
    waiting: bool
    """No whole request in, nothing being answered: closing it costs no one an answer."""
    make_room: Callable[[], None]
    """Closes it, for a newcomer."""


class ConnectionGate:
    """Counts the web app's open connections (by transport, which outlives a websocket
    upgrade) and decides whether one more may stay.

    At a cap, the oldest connection still waiting for its request (from the same source, for
    `per_source`) is closed to make room, and the newcomer is refused only when none is waiting.
    So slow clients, which wait forever, crowd out each other rather than the clients that
    send a request at once, and those still get in.
    """

    def __init__(
        self,
        limits: ConnectionLimits,
        *,
        descriptors: Callable[[], int] = open_descriptors,
        descriptor_limit: Callable[[], int] = _descriptor_limit,
    ) -> None:
        self.limits = limits
        self._descriptors = descriptors
        self._descriptor_limit = descriptor_limit
        self._held: dict[asyncio.BaseTransport, _Held] = {}
        self._releasing: set[asyncio.BaseTransport] = set()
        """Closed, their descriptors about to go (asyncio closes a socket a loop turn later)."""

    @property
    def open(self) -> int:
        """Connections admitted and not yet closed."""
        self._sort_closed()
        return len(self._held)

    def admit(self, transport: asyncio.BaseTransport, make_room: Callable[[], None]) -> bool:
        """Whether `transport` may stay (counted, as waiting, until it closes); `make_room`
        closes it should a newcomer need its place while it waits."""
        self._sort_closed()
        source = _source_of(transport)
        if (reached := self._cap_reached(source)) is not None:
            cap, scope = reached
            victim = self._oldest_waiting(scope)
            if victim is None:
                _log.warning("web connection from %s refused: %s", source, cap)
                return False
            _log.info(
                "closing a waiting web connection from %s: %s", self._held[victim].source, cap
            )
            self._held.pop(victim).make_room()
            self._releasing.add(victim)
        now = asyncio.get_running_loop().time()
        self._held[transport] = _Held(source, now, waiting=True, make_room=make_room)
        return True

    def short_of_descriptors(self, reserve: int, *, releasing: int = 0) -> bool:
        """Whether the process is within `reserve` descriptors of its limit (not counting
        `releasing` ones, about to be closed)."""
        return self._descriptors() - releasing >= self._descriptor_limit() - reserve

    def serving(self, transport: asyncio.BaseTransport) -> None:
        """Its request is in (or it is a websocket now): it is no longer waiting."""
        if (held := self._held.get(transport)) is not None:
            held.waiting = False

    def waiting(self, transport: asyncio.BaseTransport) -> None:
        """It was answered and waits for its next request."""
        if (held := self._held.get(transport)) is not None:
            held.waiting = True
            held.since = asyncio.get_running_loop().time()

    def _cap_reached(self, source: str) -> tuple[str, str | None] | None:
        """The cap a newcomer from `source` would break, and whose connection may make room
        (None: anyone's); the narrowest first, as one place freed there frees one everywhere."""
        if sum(1 for h in self._held.values() if h.source == source) >= self.limits.per_source:
            return "per-source", source
        if len(self._held) >= self.limits.total:
            return "total", None
        if self.short_of_descriptors(self.limits.fd_reserve, releasing=len(self._releasing)):
            return "descriptors", None
        return None

    def _oldest_waiting(self, source: str | None) -> asyncio.BaseTransport | None:
        waiting = [
            (held.since, n, transport)
            for n, (transport, held) in enumerate(self._held.items())
            if held.waiting and source in (None, held.source)
        ]
        return min(waiting)[2] if waiting else None

    def _sort_closed(self) -> None:
        for transport in [t for t in self._held if t.is_closing()]:
            del self._held[transport]
            self._releasing.add(transport)
        self._releasing = {t for t in self._releasing if _holds_descriptor(t)}


class _ReservingSocket(socket.socket):
    """A listening socket that accepts at most `_PER_TURN` connections a loop turn, and closes
    what it accepts, at once, while the process is within half the reserve of its descriptor
    limit.

    asyncio accepts up to a whole backlog in one turn, and hands each to the gate turns later,
    so a burst of slow clients reconnecting together could use the reserve up before the gate
    saw one (and then asyncio logs `accept() out of system resource`, over and over). Taking a
    few a turn leaves the rest queued in the kernel, in order, for the next turns.
    """

    gate: ConnectionGate
    taken: int = 0
    """Connections accepted this loop turn."""

    def accept(self) -> tuple[socket.socket, object]:
        while True:
            if self.taken >= _PER_TURN:
                raise BlockingIOError  # asyncio comes back next turn; the kernel holds the rest
            conn, address = super().accept()  # BlockingIOError once none is waiting
            if self.taken == 0:
                asyncio.get_running_loop().call_soon(self._next_turn)
            self.taken += 1
            if not self.gate.short_of_descriptors(self.gate.limits.fd_reserve // 2):
                return conn, address
            conn.close()

    def _next_turn(self) -> None:
        self.taken = 0


def listening_socket(plain: socket.socket, gate: ConnectionGate) -> socket.socket:
    """`plain` (a listening socket, taken over) as one that keeps the descriptor backstop."""
    guarded = _ReservingSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    guarded.gate = gate
    return guarded


def _source_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


def _holds_descriptor(transport: asyncio.BaseTransport) -> bool:
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.fileno() != -1
