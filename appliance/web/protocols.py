"""uvicorn's connection protocols, with what a hostile network needs and uvicorn lacks.

HTTP (uvicorn's h11 protocol): each connection is first admitted by the `ConnectionGate`, and
must then send each whole request within `request_s`. uvicorn bounds only the idle time after a
response (its keep-alive timeout), so a client trickling a byte a second held its connection,
and a descriptor, for as long as it liked. WebSocket (uvicorn's websockets-sansio protocol): the
messages that arrived whole before a frame that breaks the protocol (one over the size limit) are
still handed to the app, before the disconnect; uvicorn dropped them, so a stream's `start`
followed at once by a 70 KB frame was never seen, and its call's token stayed pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from appliance.web.connections import ConnectionGate

__all__ = ["WholeMessagesWebSocket", "guarded_http"]

_log = logging.getLogger(__name__)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n"
    b"Retry-After: 5\r\n\r\n"
)
_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_REQUEST_IN = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)
"""The client's states once its request has arrived whole (or it can send no more)."""
_NOT_ANSWERING = (h11.IDLE, h11.SEND_RESPONSE)
"""Our states before an answer has begun."""


def guarded_http(gate: ConnectionGate) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol behind `gate`, and held to its request deadline."""
    request_s = gate.limits.request_s

    class GuardedH11(H11Protocol):
        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self._refused = False
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if not gate.admit(transport, self._give_way):
                self._refused = True
                transport.write(_BUSY)
                transport.close()
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state in _REQUEST_IN or self.transport.get_protocol() is not self:
                self._disarm()  # the request is in (or the connection is a websocket now)
                gate.serving(self.transport)

        def on_response_complete(self) -> None:
            self._arm()  # for the next request; a pipelined one may already be in
            gate.waiting(self.transport)
            super().on_response_complete()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return
            _log.info("closing a web connection that sent no whole request in %.0f s", request_s)
            self._give_way()

        def _give_way(self) -> None:
            """Close it, saying why when no answer has begun."""
            self._disarm()
            if self.conn.our_state in _NOT_ANSWERING:
                self.transport.write(_TOO_SLOW)
                self.transport.close()
            else:
                self.transport.abort()

    return GuardedH11


class WholeMessagesWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol; what arrived before a broken frame is not lost."""

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        if self.conn.parser_exc is not None:
            self.handle_events()
            self.handle_parser_exception()
            return
        if self.conn.handshake_exc is not None and not self.handshake_initiated:
            self.handle_handshake_exception()
            return
        self.handle_events()
