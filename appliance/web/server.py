"""The web app, and uvicorn serving it on the appliance's event loop.

`create_app` composes routers (each built with its dependencies passed in, no globals).
`WebServer` is an async context manager: it is listening when entered and, on exit, runs the
`on_stop` hook (hang up the calls it carries), then shuts uvicorn down gracefully. Its
connections are capped and held to a request deadline (see connections.py and protocols.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from appliance.web.connections import ConnectionGate, ConnectionLimits, listening_socket
from appliance.web.protocols import WholeMessagesWebSocket, guarded_http

__all__ = ["WebServer", "create_app"]

_log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
"""Largest websocket message accepted; a Media Streams message is well under 1 KiB."""


def create_app(*routers: APIRouter) -> FastAPI:
    """One app with every router; no docs pages (this is an appliance, not a public API)."""
    app = FastAPI(title="TEL3SIS", docs_url=None, redoc_url=None, openapi_url=None)
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(ClientDisconnect, _gone)
    return app


async def _gone(_: Request, __: Exception) -> Response:
    """A client that left while its body was read (a slow one cut off, most often) is no
    fault of ours: no traceback in the log. Nobody is there to read the answer."""
    return Response(status_code=400)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The appliance owns SIGINT/SIGTERM (its stop event); uvicorn must not take them over.
        yield


class WebServer:
    """uvicorn serving `app` on `host:port` (port 0: any free port; see `port`)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str,
        port: int,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        shutdown_s: int = 5,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._app = app
        self._gate = ConnectionGate(limits or ConnectionLimits())
        self._host = host
        self._requested_port = port
        self._on_stop = on_stop
        self._shutdown_s = shutdown_s
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def app(self) -> FastAPI:
        return self._app

    @property
    def connections(self) -> int:
        """Connections open now (HTTP and websocket)."""
        return self._gate.open

    @property
    def port(self) -> int:
        """The port it listens on (known once entered)."""
        assert self._socket is not None, "the server is not started"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """`http://host:port`, for a client on this machine."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host  # noqa: S104 - mapping the wildcard to loopback
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> WebServer:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._socket = listening_socket(
            socket.create_server((self._host, self._requested_port), family=family), self._gate
        )
        # Accepted connections inherit this. asyncio sets it only on sockets whose proto is
        # IPPROTO_TCP, and create_server's is 0: without it every response after the first on
        # a kept-alive connection (and each small websocket frame) waited ~40 ms for an ACK.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            http=guarded_http(self._gate),
            ws=WholeMessagesWebSocket,
            ws_max_size=MAX_MESSAGE_BYTES,
            timeout_graceful_shutdown=self._shutdown_s,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="web-server"
        )
        while not self._server.started:
            if self._task.done():
                self._socket.close()
                await self._task  # raises what stopped it
                raise RuntimeError("the web server stopped while starting")
            await asyncio.sleep(0.01)
        _log.info("web app listening on %s:%d", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._task is not None and self._socket is not None
        try:
            if self._on_stop is not None:
                await self._on_stop()
        finally:
            self._server.should_exit = True
            try:
                async with asyncio.timeout(self._shutdown_s + 2.0):
                    await asyncio.shield(self._task)
            except TimeoutError:
                _log.warning("the web server did not stop in time; forcing it")
                self._server.force_exit = True
                await self._task
            finally:
                self._socket.close()
