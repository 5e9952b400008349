"""The recording of a call still in progress downloads whole: what was there at the request, with
a length and a WAV header that match it, while the call goes on writing.

The call belongs to another process (its owner lock held, its WAV appended as a call's writer
appends); the page is served by a real appliance on loopback, without its models.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from appliance.settings import Settings
from tests.support.status import Box, CallElsewhere, call_elsewhere, log_in, serve_box


@pytest_asyncio.fixture
async def live(app_settings: Settings) -> AsyncIterator[tuple[Box, CallElsewhere]]:
    async for box in serve_box(app_settings):
        # Four minutes in: long enough that a download is still being sent when the call
        # appends again.
        call = await call_elsewhere(
            box.app.records.db, app_settings.paths.recordings, seconds=240.0
        )
        try:
            yield box, call
        finally:
            call.close()


def _consistent(body: bytes, declared: int, now_on_disk: bytes) -> None:
    """A whole WAV: as long as declared, its header's sizes saying so, its audio what was
    recorded."""
    assert len(body) == declared
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and body[36:40] == b"data"
    riff, data = struct.unpack_from("<I", body, 4)[0], struct.unpack_from("<I", body, 40)[0]
    assert (riff, data) == (len(body) - 8, len(body) - 44)
    assert data % 4 == 0
    assert body[44:] == now_on_disk[44 : len(body)]


async def test_a_download_started_before_the_call_appends_keeps_its_length(
    live: tuple[Box, CallElsewhere],
) -> None:
    box, call = live
    url = f"/recordings/{call.relative}"
    path = box.app.settings.paths.recordings / call.relative
    async with box.client() as http:
        await log_in(http)
        async with http.stream("GET", url) as response:
            assert response.status_code == 200
            declared = int(response.headers["content-length"])
            assert declared == path.stat().st_size
            # The call goes on while the download is under way.
            await asyncio.to_thread(call.speak, 5.0)
            body = await response.aread()
        _consistent(body, declared, path.read_bytes())
        assert len(body) < path.stat().st_size


async def test_downloads_and_ranges_during_a_live_recording_are_whole(
    live: tuple[Box, CallElsewhere],
) -> None:
    box, call = live
    url = f"/recordings/{call.relative}"
    path = box.app.settings.paths.recordings / call.relative
    stop = threading.Event()

    def record() -> None:
        while not stop.is_set():
            call.speak(0.1)  # the writer appends every 100 ms of audio
            stop.wait(0.005)

    writer = asyncio.create_task(asyncio.to_thread(record))
    try:
        async with box.client() as http:
            await log_in(http)
            for _ in range(4):
                whole = await http.get(url)
                assert whole.status_code == 200
                _consistent(whole.content, int(whole.headers["content-length"]), path.read_bytes())
                part = await http.get(url, headers={"Range": "bytes=0-"})
                assert part.status_code == 206
                size = int(part.headers["content-range"].rsplit("/", 1)[1])
                assert part.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
                _consistent(part.content, size, path.read_bytes())
                tail = await http.get(url, headers={"Range": "bytes=-4000"})
                assert tail.status_code == 206 and len(tail.content) == 4000
                beyond = await http.get(url, headers={"Range": f"bytes={10**9}-"})
                assert beyond.status_code == 416
    except httpx.RemoteProtocolError as exc:
        raise AssertionError(f"a download broke off: {exc}") from exc
    finally:
        stop.set()
        await writer
