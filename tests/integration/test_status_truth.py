"""The status page tells the truth, in Debian's Chromium (headless, driven by Playwright): slow
turns make it say so, a call another process runs shows as in progress, the last day is
plotted, and every page fits a phone's 390 px.

The appliance is built as `appliance serve` builds it, without its models: its records are
seeded the way calls write them (the memory layer's own functions), one of them a call still in
progress in another process (its owner lock held, its recording still growing). Screenshots go
to the test's own tmp dir.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from appliance.settings import Settings
from tests.conftest import ROOT
from tests.integration.test_status_browser import _OVERFLOW, browser
from tests.support.status import (
    PASSWORD,
    STARTS,
    TIMINGS,
    Box,
    CallElsewhere,
    call_elsewhere,
    log_in,
    seed_call,
    serve_box,
)

__all__ = ["browser"]  # the fixture, shared with the other browser test

pytestmark = pytest.mark.asyncio(loop_scope="session")

SLOW_WAITS = (18_400.0, 31_000.0, 52_300.0, 24_800.0)
"""What callers waited on a box at load 16 on 2 cores (issue 17)."""
LONG_CALLER = "sip:0123456789abcdef0123456789abcdef@pbx-of-a-long-name.example.com"


@pytest_asyncio.fixture(loop_scope="session")
async def slow_box(app_settings: Settings) -> AsyncIterator[tuple[Box, CallElsewhere]]:
    async for box in serve_box(app_settings):
        db, recordings = box.app.records.db, app_settings.paths.recordings
        for i, wait in enumerate(SLOW_WAITS):
            timings = {**TIMINGS, "llm_first_token": wait - 700, "turn": wait}
            await seed_call(
                db,
                recordings,
                call_id=f"CAslow{i:03d}",
                caller=f"+1555000{i:04d}",
                started=time.time() - 3600 * (i + 1),
                timings=timings,
                starts=STARTS,
            )
        # A SIP caller id with nowhere to break: it must not push a phone's page sideways.
        await seed_call(db, recordings, call_id="CAlongsip", caller=LONG_CALLER)
        elsewhere = await call_elsewhere(db, recordings, caller="+15557770001", seconds=3.0)
        try:
            yield box, elsewhere
        finally:
            elsewhere.close()


async def _log_in(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(url + "/")


async def _fits(page: Page, shots: Path, name: str) -> None:
    """Nothing sticks out of the 390 px window, and the proof is kept as a screenshot."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert width <= 390, (name, width)
    assert await page.evaluate(_OVERFLOW) == [], name


async def test_slow_turns_a_call_elsewhere_and_the_plots_on_a_screen_and_a_phone(
    slow_box: tuple[Box, CallElsewhere], browser: Browser, tmp_path: Path
) -> None:
    box, elsewhere = slow_box
    url = box.server.url
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        await _log_in(page, url)
        await expect(page.locator("#live-state")).to_have_text("live", timeout=10_000)

        # Turns of 18-52 s: the page says callers are kept waiting, not that all is well.
        verdict = page.locator("#verdict")
        await expect(verdict).to_contain_text("Callers are kept waiting")
        await expect(verdict).not_to_contain_text("Everything is working")
        await expect(page.locator(".banner")).to_have_attribute("data-level", "fail")
        callers = page.locator("#part-callers")
        await expect(callers).to_have_class("card health fail")
        await expect(callers).to_contain_text("median wait")

        # The call `appliance call` runs beside the server is in progress, not "no calls".
        card = page.locator(f'#elsewhere .call-card[data-call="{elsewhere.call_id}"]')
        await expect(card).to_be_visible()
        await expect(card).to_contain_text("+15557770001")
        await expect(page.locator("#live .empty")).to_have_count(0)

        # The last day, plotted: the wait (median and p95 against the target), each stage,
        # calls per hour, outcomes.
        await expect(page.locator("#chart-wait polyline.series.median")).not_to_have_count(0)
        await expect(page.locator("#chart-wait polyline.series.p95")).not_to_have_count(0)
        await expect(page.locator("#chart-wait line.target")).to_have_count(1)
        await expect(page.locator("#chart-stages rect.bar")).to_have_count(7)
        await expect(page.locator("#chart-hours rect.bar")).to_have_count(5)
        await expect(page.locator("#chart-outcomes")).to_contain_text("caller hung up")
        await expect(page.locator("#chart-outcomes")).to_contain_text("in progress")
        await page.screenshot(path=str(tmp_path / "status-wide.png"), full_page=True)

        # The call list shows each call's wait, red past twice the target.
        await page.goto(url + "/calls")
        slow = page.locator("table.calls tr", has_text="+15550000002")
        await expect(slow.locator("td.wait")).to_have_text("52 s")
        await expect(slow.locator(".wait-cell")).to_have_class("wait-cell fail")

        # A phone: every page fits, and a waterfall's labels stay readable.
        await page.set_viewport_size({"width": 390, "height": 844})
        stranger = await browser.new_page(viewport={"width": 390, "height": 844})
        await stranger.goto(url + "/")
        await _fits(stranger, tmp_path, "phone-login")
        await stranger.close()
        missing = await context.new_page()  # a 404 is logged as an error: not watched
        await missing.set_viewport_size({"width": 390, "height": 844})
        await missing.goto(url + "/calls/CAnothing")
        await _fits(missing, tmp_path, "phone-no-such-call")
        await missing.close()
        for name, path in (
            ("status", "/"),
            ("calls", "/calls"),
            ("call", "/calls/CAslow002"),
            ("call-from-sip", "/calls/CAlongsip"),
            ("call-in-progress", f"/calls/{elsewhere.call_id}"),
            ("business", "/business"),
        ):
            await page.goto(url + path)
            await _fits(page, tmp_path, f"phone-{name}")
        await page.goto(url + "/calls/CAslow002")
        await expect(page.locator(".waterfall.wide").first).to_be_hidden()
        narrow = page.locator(".waterfall.narrow").first
        await expect(narrow).to_be_visible()
        sizes = await narrow.locator("text.label").evaluate_all(
            "labels => labels.map(t => t.getBoundingClientRect().height)"
        )
        assert len(sizes) == 7 and min(sizes) >= 10, sizes  # drawn at 10 px or more
        await page.goto(url + "/")
        await expect(page.locator("#chart-stages text.label").first).to_be_visible()
        stage_label = await page.locator("#chart-stages text.label").first.evaluate(
            "t => t.getBoundingClientRect().height"
        )
        assert stage_label >= 10, stage_label
    finally:
        await context.close()
    assert problems == []


_HOLD_A_CALL = """
import asyncio, sys, time
from pathlib import Path
from appliance.conversation.ports import CallInfo
from appliance.memory import calls, owners
from appliance.memory.db import Database

async def main(path: Path) -> None:
    owner = owners.Owner(path.parent / "owners")
    db = Database(path)
    await db.open()
    def write(conn):
        info = CallInfo(call_id="CAproc01", line="wav", caller="+15556660001")
        calls.open_call(conn, info, started=time.time(), owner=owner.id, memory="")
        calls.save_caller_words(conn, "CAproc01", turn=1, text="Hello?", started=0.2, ended=1.0)
    await db.run(write)
    await db.aclose()
    print("open", flush=True)
    sys.stdin.readline()  # the call goes on until the test ends it

asyncio.run(main(Path(sys.argv[1])))
"""
"""Another process with the records open and a call in progress, as `appliance call` has."""


async def test_a_call_in_another_process_is_in_progress_while_that_process_lives(
    app_settings: Settings,
) -> None:
    async for box in serve_box(app_settings):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HOLD_A_CALL,
            str(box.app.records.db.path),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            async with asyncio.timeout(30):
                assert await process.stdout.readline() == b"open\n"
            async with box.client() as http:
                await log_in(http)
                page = (await http.get("/")).text
                assert 'data-call="CAproc01"' in page and "+15556660001" in page
                assert "No calls right now" not in page
                partial = (await http.get("/partials/health")).text  # what the page refreshes
                assert 'data-call="CAproc01"' in partial
                assert "in progress; 1 more in another process" in partial
                process.stdin.close()  # the other process ends (here: as if it died)
                assert await process.wait() == 0
                page = (await http.get("/")).text
                assert 'data-call="CAproc01"' not in page
                assert "No calls right now" in page
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
