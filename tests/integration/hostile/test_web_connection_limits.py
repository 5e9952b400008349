"""The web server's own limits, on loopback with small numbers: a whole request within
`request_s` or a 408; a cap per source address and in all, where a newcomer displaces the
oldest connection still waiting for its request and is refused only when none is waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request

from appliance.web.connections import ConnectionLimits
from appliance.web.server import WebServer, create_app

pytestmark = pytest.mark.timeout(60)

_LIMITS = ConnectionLimits(per_source=3, total=5, request_s=1.0)
_PATIENT = ConnectionLimits(per_source=3, total=5, request_s=30.0)
"""For the caps: no connection here runs out of time on its own."""


@contextlib.asynccontextmanager
async def _server(
    limits: ConnectionLimits = _LIMITS,
) -> AsyncIterator[tuple[WebServer, asyncio.Event]]:
    """A server with `/ping`, and `/hold`, which answers once the yielded event is set."""
    router = APIRouter()
    release = asyncio.Event()

    @router.get("/ping")
    async def ping() -> str:
        return "pong"

    @router.post("/echo")
    async def echo(request: Request) -> int:
        return len(await request.body())

    @router.get("/hold")
    async def hold() -> str:
        await release.wait()
        return "held"

    async with WebServer(create_app(router), host="127.0.0.1", port=0, limits=limits) as server:
        try:
            yield server, release
        finally:
            release.set()


async def _connect(
    server: WebServer, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))


async def _answer(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """The status line the server sent (b"" when it closed without one), within `within_s`."""
    async with asyncio.timeout(within_s):
        return await reader.readline()


async def _ping(server: WebServer) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as http:
        return (await http.get("/ping")).status_code


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly part of it",
    ],
    ids=["nothing", "half-a-head", "half-a-body"],
)
async def test_a_request_not_whole_within_request_s_is_answered_408(sent: bytes) -> None:
    async with _server() as (server, _):
        reader, writer = await _connect(server, "127.0.0.2")
        writer.write(sent)
        loop = asyncio.get_running_loop()
        opened = loop.time()
        trickle = asyncio.create_task(_trickle(writer))
        try:
            status = await _answer(reader, within_s=5 * _LIMITS.request_s)
        finally:
            trickle.cancel()
            writer.close()
        assert status.startswith(b"HTTP/1.1 408")
        assert loop.time() - opened >= _LIMITS.request_s * 0.9
        assert await _ping(server) == 200
        await _until_closed(server)


async def _trickle(writer: asyncio.StreamWriter) -> None:
    """A byte every 0.1 s: never idle, never done."""
    with contextlib.suppress(OSError):
        while True:
            await asyncio.sleep(0.1)
            writer.write(b"a")
            await writer.drain()


async def _until_closed(server: WebServer) -> None:
    async with asyncio.timeout(5):
        while server.connections:  # noqa: ASYNC110 - the server's own count
            await asyncio.sleep(0.02)


async def test_kept_alive_clients_that_keep_asking_are_not_cut_off() -> None:
    async with _server() as (server, _), httpx.AsyncClient(base_url=server.url) as http:
        loop = asyncio.get_running_loop()
        until = loop.time() + 3 * _LIMITS.request_s
        asked = 0
        while loop.time() < until:
            assert (await http.get("/ping")).status_code == 200
            asked += 1
            await asyncio.sleep(_LIMITS.request_s / 4)  # pacing the client, not waiting on it
        assert server.connections == 1 and asked >= 6


async def test_a_source_at_its_cap_displaces_its_own_oldest_waiting_connection() -> None:
    async with _server(_PATIENT) as (server, _):
        slow = [await _connect(server, "127.0.0.2") for _ in range(_LIMITS.per_source)]
        await _until_counted(server, _LIMITS.per_source)
        newcomer = await _connect(server, "127.0.0.2")
        first_reader = slow[0][0]
        assert (await _answer(first_reader, within_s=2.0)).startswith(b"HTTP/1.1 408")
        for reader, _ in slow[1:]:
            with pytest.raises(TimeoutError):
                await _answer(reader, within_s=0.1)  # still open, still waiting
        assert await _ping(server) == 200  # another source is not affected
        for _, writer in [*slow, newcomer]:
            writer.close()


async def test_a_source_whose_connections_are_all_being_answered_is_refused_503() -> None:
    async with (
        _server(_PATIENT) as (server, release),
        httpx.AsyncClient(base_url=server.url, timeout=10.0) as http,
    ):
        held = [asyncio.create_task(http.get("/hold")) for _ in range(_LIMITS.per_source)]
        await _until_counted(server, _LIMITS.per_source)
        reader, writer = await _connect(server, "127.0.0.1")
        assert (await _answer(reader, within_s=2.0)).startswith(b"HTTP/1.1 503")
        writer.close()
        release.set()
        assert [(await h).text for h in held] == ['"held"'] * _LIMITS.per_source


async def test_at_the_total_cap_slow_clients_give_way_to_a_real_request() -> None:
    async with _server(_PATIENT) as (server, _):
        sources = [f"127.0.0.{n}" for n in range(2, 2 + _LIMITS.total)]
        slow = [await _connect(server, source) for source in sources]
        await _until_counted(server, _LIMITS.total)
        assert await _ping(server) == 200
        answers = await asyncio.gather(*(_first_line(r) for r, _ in slow))
        assert answers == [b"HTTP/1.1 408 Request Timeout\r\n"] + [b""] * (_LIMITS.total - 1)
        for _, writer in slow:
            writer.close()


async def _first_line(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(TimeoutError):
        return await _answer(reader, within_s=0.5)
    return b""


async def _until_counted(server: WebServer, count: int) -> None:
    async with asyncio.timeout(5):
        while server.connections < count:  # noqa: ASYNC110 - the server's own count
            await asyncio.sleep(0.02)
