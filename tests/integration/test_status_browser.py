"""The status page in a real browser: Debian's Chromium, headless, driven by Playwright.

The owner logs in, watches a call (a recording played through the router with the real models)
appear with its live transcript, finds it in the history, plays its recording (the audio
element loads it with range requests) and sees each turn's latency waterfall; then reads the
business page, on a wide screen and a phone's. Every page keeps to its Content-Security-Policy
(a violation is a console error). Screenshots go to tests/output/status/. No browser is
downloaded: Playwright launches /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Response, async_playwright, expect

from appliance.app import Appliance
from appliance.conversation.ports import CallInfo
from appliance.harness.call import run_wav_call
from appliance.settings import Settings
from appliance.telephony.wavfile import HangUp, Speak, load_wav
from tests.conftest import AUDIO, ROOT
from tests.support.status import PASSWORD, serve_box, set_password

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "tests" / "output" / "status"


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(str(CHROMIUM)) is None or shutil.which("chromedriver") is None:
        pytest.fail("the browser tests need Debian's chromium: ./install.sh --dev", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_the_owner_watches_a_call_live_then_finds_and_replays_it(
    appliance: Appliance, browser: Browser
) -> None:
    set_password(appliance.settings.paths.admin_password)
    caller = load_wav(AUDIO / "goforward.wav").pcm
    number = "+15550142"
    info = CallInfo(call_id=f"web-{uuid.uuid4().hex[:8]}", line="wav", caller=number)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    recordings: list[Response] = []
    page.on("response", lambda r: recordings.append(r) if "/recordings/" in r.url else None)
    call: asyncio.Task[object] | None = None
    async with appliance.web_server("127.0.0.1", 0) as server:
        try:
            # Log in: the page sends a stranger to the login form first.
            await page.goto(server.url + "/")
            assert "/login" in page.url
            await _shot(page, "1-login")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(server.url + "/")
            await expect(page.locator("#live-state")).to_have_text("live", timeout=10_000)
            await expect(page.locator("#part-models")).to_contain_text("loaded")

            # A call comes in: it appears with what the caller says, then the agent's reply.
            call = asyncio.create_task(
                run_wav_call(
                    appliance.answer,
                    [Speak(caller, label="goforward"), HangUp(gap_ms=3000)],
                    clock=appliance.clock,
                    info=info,
                    max_call_s=120,
                )
            )
            card = page.locator(f'.call-card[data-call="{info.call_id}"]')
            await expect(card).to_be_visible(timeout=30_000)
            await expect(card).to_contain_text(number)
            said = card.locator("li.caller")
            await expect(said).to_contain_text(re.compile("forward", re.I), timeout=90_000)
            await expect(card.locator("li.agent")).to_have_count(2, timeout=90_000)
            await _shot(page, "2-live-call")
            report = await call
            await expect(card).to_have_class(re.compile(r"\bended\b"), timeout=10_000)
            assert report.ended == "caller hung up"

            # The history finds it by what was said.
            await page.click("nav >> text=Calls")
            await page.fill("input[name=q]", "forward")
            await page.press("input[name=q]", "Enter")
            row = page.locator("table.calls tbody tr", has_text=number).first
            await expect(row).to_be_visible()
            await _shot(page, "3-history")

            # The call: its recording plays (the browser asks for byte ranges), its waterfall.
            await row.locator("a").click()
            await page.wait_for_url(re.compile(r"/calls/web-"))
            await expect(page.locator(".transcript.full li.caller")).to_contain_text(
                report.turns[0].transcript
            )
            await page.wait_for_function(
                "() => { const a = document.getElementById('recording');"
                " return a && a.readyState >= 1 && a.duration > 2; }",
                timeout=15_000,
            )
            await page.evaluate("document.getElementById('recording').play()")
            await page.wait_for_function(
                "() => document.getElementById('recording').currentTime > 0.2", timeout=15_000
            )
            chart = page.locator("figure.waterfall svg").first
            await expect(chart).to_be_visible()
            assert await chart.locator("rect.bar").count() >= 5
            await expect(chart).to_contain_text("caller waited")
            await _shot(page, "4-call")
        finally:
            if call is not None and not call.done():
                call.cancel()
            await context.close()
    served = [(r.status, r.headers.get("content-range", "")) for r in recordings]
    assert any(status == 206 and rng.startswith("bytes 0-") for status, rng in served), served
    assert problems == []


_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('main *')]
    .filter(e => e.getBoundingClientRect().right > width + 1 && !e.closest('pre'))
    .map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + (e.textContent || '').slice(0, 40));
  if (document.documentElement.scrollWidth > width) wide.push('the page scrolls sideways');
  return wide;
}"""
"""What sticks out of the window to the right (a <pre> scrolls, as it should)."""


async def test_the_business_page_keeps_to_the_csp_and_fits_a_phone(
    app_settings: Settings, browser: Browser
) -> None:
    conversation = app_settings.conversation.model_copy(
        update={"business_file": ROOT / "business.example.toml"}
    )
    settings = dataclasses.replace(app_settings, conversation=conversation)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        async for box in serve_box(settings):
            await page.goto(box.server.url + "/business")
            assert "/login" in page.url
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(box.server.url + "/business")
            await expect(page.locator("nav a.active")).to_have_text("Business")
            await expect(page.locator("#open-now")).to_contain_text("right now")
            await expect(page.locator("#week tbody tr")).to_have_count(7)
            await expect(page.locator("#services")).to_contain_text("Teeth whitening")
            # The prompt stays folded until asked for.
            prompt = page.locator("#prompt pre")
            await expect(prompt).to_be_hidden()
            await page.click("#prompt summary")
            await expect(prompt).to_be_visible()
            await expect(prompt).to_contain_text("Maple Street Dental")
            assert await page.evaluate(_OVERFLOW) == []
            await _shot(page, "5-business")
            await page.set_viewport_size({"width": 390, "height": 844})
            assert await page.evaluate(_OVERFLOW) == []
            await _shot(page, "6-business-phone")
            # The stylesheet applies (no inline style is needed, none is allowed).
            radius = await page.locator("#open-state").evaluate(
                "e => getComputedStyle(e).borderRadius"
            )
            assert radius == "999px"
    finally:
        await context.close()
    assert problems == []
