"""uvicorn's connection protocols, with what a hostile network needs and uvicorn lacks.

WebSocket (uvicorn's websockets-sansio protocol): the messages that arrived whole before a frame
that breaks the protocol (one over the size limit) are still handed to the app, before the
disconnect; uvicorn dropped them, so a stream's `start` followed at once by a 70 KB frame was
never seen, and its call's token stayed pending.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["WholeMessagesWebSocket"]


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
