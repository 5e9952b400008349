"""What the status page costs the box: a login, each page, a scrape, a live update.

    MODELS_DIR=... .venv/bin/python -m bench.status_page [--runs 5] [--calls 2000]

The appliance is built as `appliance serve` builds it (models not loaded: no call is placed)
over a database of `--calls` recorded calls of eight turns each, and served on loopback. Each
figure is the median over `--runs` repetitions of the median of 20 requests, so one slow moment
on a shared machine does not move it. The login is one scrypt check at the stored cost; the
live update is one event fanned out to 16 watching pages.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import apsw
import httpx

from appliance.app import Appliance
from appliance.clock import LoopClock
from appliance.conversation.events import TranscriptFinal
from appliance.conversation.ports import CallInfo
from appliance.memory import calls
from appliance.settings import PathSettings, Settings
from appliance.web.live import LiveCalls
from appliance.web.password import PasswordRecord, save_password

_PASSWORD = "a bench password"  # noqa: S105 - a scratch box of the bench's own


def _median_ms(work: Callable[[], object], count: int = 20) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _client(url: str) -> dict[str, float]:
    """The browser's side, on a thread of its own: with the client on the server's own loop,
    the two take turns and every request pays a delayed ACK (about 40 ms on loopback)."""
    found: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        form = http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        started = time.perf_counter()
        done = http.post("/login", data={"csrf": token.group(1), "password": _PASSWORD})
        found["log in (one scrypt check)"] = (time.perf_counter() - started) * 1000
        assert done.status_code == 303, done.status_code
        for name, path in (
            ("status page /", "/"),
            ("history page /calls", "/calls"),
            ("history search (words said)", "/calls?q=sentence+number+3+about"),
            ("one call with its waterfalls", "/calls/bench-00042"),
            ("/metrics (health checks cached)", "/metrics"),
        ):

            def get(path: str = path) -> None:
                response = http.get(path)
                assert response.status_code == 200, (path, response.status_code)

            found[name] = _median_ms(get)
    return found


def _fill(conn: apsw.Connection, count: int) -> None:
    timings = {"endpoint": 360.0, "stt": 112.0, "llm_first_token": 158.0, "turn": 640.0}
    starts = {"endpoint": 0.0, "stt": 160.0, "llm_first_token": 300.0, "turn": 0.0}
    with conn:
        for i in range(count):
            info = CallInfo(call_id=f"bench-{i:05d}", line="wav", caller=f"+1555{i:07d}")
            cid = calls.open_call(conn, info, started=1.7e9 + i * 60, owner="bench", memory="")
            for turn in range(1, 5):
                said = f"caller {i} says sentence number {turn} about the booking"
                calls.save_caller_words(
                    conn, cid, turn=turn, text=said, started=turn * 5.0, ended=turn * 5.0 + 2
                )
                calls.save_agent_words(
                    conn,
                    cid,
                    turn=turn,
                    text=f"reply {turn} to caller {i}",
                    started=turn * 5.0 + 3,
                    ended=turn * 5.0 + 4,
                    interrupted=False,
                    timings=timings,
                    starts=starts,
                )
            calls.end_call(conn, cid, ended=1.7e9 + i * 60 + 30, outcome="caller hung up")


async def _pages(settings: Settings, calls_count: int) -> dict[str, float]:
    app = Appliance.build(settings)
    await app.records.start()
    await app.records.db.run(_fill, calls_count)
    found: dict[str, float] = {}
    started = time.perf_counter()
    record = await asyncio.to_thread(PasswordRecord.create, _PASSWORD)
    found["hash a password (scrypt, default cost)"] = (time.perf_counter() - started) * 1000
    await asyncio.to_thread(save_password, settings.paths.admin_password, record)
    try:
        async with app.web_server("127.0.0.1", 0) as server:
            found |= await asyncio.to_thread(_client, server.url)
    finally:
        await app.aclose()
    return found


def _fan_out_us(watchers: int = 16, updates: int = 2000) -> float:
    async def run() -> float:
        live = LiveCalls(clock=LoopClock(), max_subscribers=watchers, queue_size=updates * 2)
        for _ in range(watchers):
            live.subscribe()
        call = live._begin(CallInfo(call_id="c", line="wav", caller="x"))
        event = TranscriptFinal(turn=1, text="hello there", confidence=1.0, engine="e")
        started = time.perf_counter()
        for _ in range(updates):
            live._note(call, event)
        return (time.perf_counter() - started) / updates * 1e6

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            base = Settings.load(None)
            paths = PathSettings(data_dir=Path(scratch), models_dir=base.paths.models)
            settings = dataclasses.replace(base, paths=paths)
            found = asyncio.run(_pages(settings, args.calls))
        found["live update to 16 pages (us)"] = _fan_out_us()
        runs.append(found)
    print(f"status page, {args.calls} calls stored, median of {args.runs} runs")
    print(f"{'what':<42} {'median':>10}")
    for name in runs[0]:
        unit = "" if name.endswith("(us)") else " ms"
        print(f"{name:<42} {statistics.median(r[name] for r in runs):>9.1f}{unit}")


if __name__ == "__main__":
    main()
