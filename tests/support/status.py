"""Helpers for the status page's tests: a served appliance, a password, a logged-in client,
recorded calls, raw HTTP.

`seed_call` writes a call the way the records do (the memory layer's own functions, a real
stereo WAV), so the pages read what a real call leaves behind without placing one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import apsw
import httpx
import numpy as np

from appliance.app import Appliance
from appliance.conversation.ports import CallInfo
from appliance.memory import calls, owners
from appliance.memory.db import Database
from appliance.memory.recording import WavFile
from appliance.settings import Settings
from appliance.web.password import Cost, PasswordRecord, save_password
from appliance.web.server import WebServer

PASSWORD: Final = "correct horse battery"
CHEAP: Final = Cost(n=2**10, r=8, p=1)
"""The tests' hashes: the default cost takes about a second per check on this machine."""

TIMINGS: Final = {
    "endpoint": 360.0,
    "stt": 112.0,
    "recall": 20.0,
    "llm_first_token": 158.0,
    "first_sentence": 270.0,
    "tts_first_audio": 95.0,
    "turn": 640.0,
}
STARTS: Final = {
    "endpoint": 0.0,
    "stt": 160.0,
    "recall": 275.0,
    "llm_first_token": 300.0,
    "first_sentence": 300.0,
    "tts_first_audio": 545.0,
    "turn": 0.0,
}


def set_password(path: Path, password: str = PASSWORD) -> PasswordRecord:
    record = PasswordRecord.create(password, CHEAP)
    save_password(path, record)
    return record


def _tone_wav(path: Path, seconds: float) -> None:
    t = np.arange(int(16_000 * seconds)) / 16_000
    stereo = np.empty(t.size * 2, "<i2")
    stereo[0::2] = (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2")
    stereo[1::2] = (np.sin(2 * np.pi * 330 * t) * 3000).astype("<i2")
    wav = WavFile(path)
    wav.append(stereo.tobytes())
    wav.close()


async def seed_call(
    db: Database,
    recordings: Path,
    *,
    call_id: str = "CAseed0001",
    caller: str = "+15551230001",
    said: str = "I'd like to book a table for four tomorrow at seven.",
    reply: str = "Sure, a table for four at seven. May I have your name?",
    started: float | None = None,
    timings: Mapping[str, float] = TIMINGS,
    starts: Mapping[str, float] = STARTS,
) -> str:
    """One ended call with a greeting, a turn with timings, and a 3 s recording; its id."""
    began = time.time() - 600 if started is None else started
    relative = f"2026/01/02/{call_id}.wav"
    await asyncio.to_thread(_tone_wav, recordings / relative, 3.0)

    def write(conn: apsw.Connection) -> str:
        info = CallInfo(call_id=call_id, line="twilio", caller=caller, callee="+15559870000")
        cid = calls.open_call(conn, info, started=began, owner="seed", memory="Name: Ada")
        calls.save_agent_words(
            conn,
            cid,
            turn=0,
            text="Hello, this is Tess.",
            started=0.2,
            ended=1.4,
            interrupted=False,
        )
        calls.save_caller_words(conn, cid, turn=1, text=said, started=2.0, ended=4.5)
        calls.save_agent_words(
            conn,
            cid,
            turn=1,
            text=reply,
            started=5.1,
            ended=8.0,
            interrupted=False,
            timings=timings,
            starts=starts,
        )
        calls.set_recording(conn, cid, "complete", path=relative)
        with conn:
            calls.end_call(conn, cid, ended=began + 9.0, outcome="caller hung up")
        return cid

    return await db.run(write)


class SteppedClock:
    """The loop's clock plus however far the test has moved it on."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def now(self) -> float:
        return asyncio.get_running_loop().time() + self.ahead

    def wall(self) -> float:
        return time.time() + self.ahead

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))


@dataclass
class Box:
    app: Appliance
    server: WebServer
    clock: SteppedClock
    call_id: str

    def client(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.url, headers=headers, timeout=10.0)

    @property
    def recording(self) -> Path:
        found = sorted(self.app.settings.paths.recordings.rglob("*.wav"))
        assert found
        return found[0]


async def serve_box(settings: Settings) -> AsyncIterator[Box]:
    """The appliance built from `settings` (its models not loaded), a seeded call, a password,
    and its web app serving on a free loopback port."""
    clock = SteppedClock()
    app = Appliance.build(settings, clock=clock)
    await app.records.start()
    set_password(settings.paths.admin_password)
    call_id = await seed_call(app.records.db, settings.paths.recordings)
    try:
        async with app.web_server("127.0.0.1", 0) as server:
            yield Box(app=app, server=server, clock=clock, call_id=call_id)
    finally:
        await app.aclose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


async def log_in(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    """Log `client` in through the form, as a browser would; the response to the POST."""
    form = await client.get("/login")
    return await client.post(
        "/login", data={"csrf": csrf_of(form.text), "password": password, "next": "/"}
    )


async def raw_get(port: int, target: str, headers: Mapping[str, str] = {}) -> int:
    """The status code for `GET target` sent byte for byte (no client normalizes the path)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status.split()[1])


@dataclass
class CallElsewhere:
    """A call in progress in another appliance process (an `appliance call` beside `serve`):
    its row open under that process's owner lock, its recording still being written."""

    call_id: str
    owner: owners.Owner
    wav: WavFile
    relative: str

    def speak(self, seconds: float) -> None:
        """Append `seconds` of stereo audio to the recording, as the call's writer does."""
        frames = int(16_000 * seconds)
        t = np.arange(self.wav.data_bytes // 4, self.wav.data_bytes // 4 + frames) / 16_000
        stereo = np.empty(frames * 2, "<i2")
        stereo[0::2] = (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2")
        stereo[1::2] = (np.sin(2 * np.pi * 330 * t) * 3000).astype("<i2")
        self.wav.append(stereo.tobytes())

    def close(self) -> None:
        self.wav.close()
        self.owner.release()


async def call_elsewhere(
    db: Database,
    recordings: Path,
    *,
    call_id: str = "CAelsewhere01",
    caller: str = "+15557770001",
    said: str = "Is the surgery open on Saturday?",
    seconds: float = 2.0,
) -> CallElsewhere:
    """A call another live process has open (see `CallElsewhere`), `seconds` into its recording."""
    owner = await asyncio.to_thread(owners.Owner, db.path.parent / "owners")
    relative = f"2026/01/03/{call_id}.wav"
    wav = await asyncio.to_thread(WavFile, recordings / relative)
    call = CallElsewhere(call_id=call_id, owner=owner, wav=wav, relative=relative)
    await asyncio.to_thread(call.speak, seconds)

    def write(conn: apsw.Connection) -> None:
        info = CallInfo(call_id=call_id, line="wav", caller=caller)
        calls.open_call(conn, info, started=time.time() - seconds, owner=owner.id, memory="")
        calls.save_caller_words(conn, call_id, turn=1, text=said, started=0.5, ended=1.8)
        calls.set_recording(conn, call_id, "recording", path=relative)

    await db.run(write)
    return call
