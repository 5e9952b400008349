"""Connecting Google Calendar from the status page, over real HTTP: the appliance built as
`appliance serve` builds it (its models not loaded), Google faked on loopback.

The fake asks for polls a second apart (Google asks for five), so a flow takes about a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from appliance.memory.tokens import TokenKey
from appliance.settings import Settings
from tests.support.fake_google import FakeGoogle, fake_google
from tests.support.status import Box, csrf_of, log_in, serve_box

_DEADLINE_S = 10.0


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with fake_google(FakeGoogle(interval=1)) as fake:
        yield fake


def _with_google(settings: Settings, google: FakeGoogle, *, key: str | None) -> Settings:
    integrations = settings.integrations.model_copy(
        update={
            "google_client_id": google.client_id,
            "google_client_secret": SecretStr(google.client_secret),
            "google_oauth_url": google.url,
            "google_calendar_api_url": f"{google.url}/calendar/v3",
            "token_encryption_key": SecretStr(key) if key else None,
        }
    )
    return dataclasses.replace(settings, integrations=integrations)


@pytest_asyncio.fixture
async def box(app_settings: Settings, google: FakeGoogle) -> AsyncIterator[Box]:
    async for made in serve_box(_with_google(app_settings, google, key=TokenKey.new())):
        yield made


@pytest_asyncio.fixture
async def keyless_box(app_settings: Settings, google: FakeGoogle) -> AsyncIterator[Box]:
    async for made in serve_box(_with_google(app_settings, google, key=None)):
        yield made


async def _until(http: httpx.AsyncClient, state: str) -> dict[str, object]:
    """/api/calendar once the flow is in `state` (within the deadline)."""
    async with asyncio.timeout(_DEADLINE_S):
        while True:
            answer = (await http.get("/api/calendar")).json()
            if answer["state"] == state:
                return dict(answer)
            await asyncio.sleep(0.05)


def _health(answer: httpx.Response) -> tuple[str, str]:
    (part,) = [p for p in answer.json()["parts"] if p["part"] == "calendar"]
    return part["level"], part["summary"]


async def _press(http: httpx.AsyncClient, action: str) -> httpx.Response:
    page = await http.get("/calendar")
    return await http.post(f"/calendar/google/{action}", data={"csrf": csrf_of(page.text)})


async def test_the_operator_connects_with_the_code_shown_and_disconnects(
    box: Box, google: FakeGoogle
) -> None:
    async with box.client() as http:
        assert (await http.get("/calendar")).status_code == 303  # behind the login
        await log_in(http)
        page = await http.get("/calendar")
        assert "Google Calendar not connected" in page.text and 'id="google-connect"' in page.text
        refused = await http.post("/calendar/google/connect", data={"csrf": "forged"})
        assert refused.status_code == 403 and google.seen("/device/code") == []
        started = await _press(http, "connect")
        assert started.status_code == 303 and started.headers["location"] == "/calendar"
        page = await http.get("/calendar")
        shown = await http.get("/api/calendar")
        code = shown.json()["user_code"]
        assert f'<strong id="user-code">{code}</strong>' in page.text
        assert "https://www.google.com/device" in page.text
        assert '<meta http-equiv="refresh" content="5">' in page.text
        google.approve(code)
        assert (await _until(http, "connected"))["connected"] is True
        page = await http.get("/calendar")
        assert "Google Calendar connected" in page.text and "google-disconnect" in page.text
        assert _health(await http.get("/api/health")) == ("ok", "Google Calendar connected")
        assert await box.app.front.google.connected()  # type: ignore[union-attr]
        (refresh,) = google.refresh_tokens
        await _press(http, "disconnect")
        assert google.revoked == [refresh]
        page = await http.get("/calendar")
        assert "Google has revoked the box" in page.text
        assert (await http.get("/api/calendar")).json()["connected"] is False


async def test_without_a_key_the_page_says_how_to_make_one(
    keyless_box: Box, google: FakeGoogle
) -> None:
    async with keyless_box.client() as http:
        await log_in(http)
        await _press(http, "connect")
        google.approve((await http.get("/api/calendar")).json()["user_code"])
        failed = await _until(http, "failed")
        assert "appliance tokens new-key" in str(failed["error"])
        page = await http.get("/calendar")
        assert "Connecting failed: TOKEN_ENCRYPTION_KEY is not set" in page.text
        assert failed["connected"] is False
        assert _health(await http.get("/api/health")) == (
            "warn",
            "Google Calendar not connected: no bookings can be made",
        )


async def test_a_new_flow_ends_the_one_before_and_one_left_pending_ends_with_the_box(
    box: Box, google: FakeGoogle
) -> None:
    async with box.client() as http:
        await log_in(http)
        await _press(http, "connect")
        first = (await _until(http, "pending"))["user_code"]
        await _press(http, "connect")
        second = (await _until(http, "pending"))["user_code"]
        assert second != first
        polls = len(google.seen("/token"))
        google.approve(str(first))  # the old code: the box no longer polls for it
        await _polled_after(google, polls)
        assert (await http.get("/api/calendar")).json()["state"] == "pending"
        assert google.refresh_tokens == set()


async def _polled_after(google: FakeGoogle, polls: int) -> None:
    """Once the box has polled Google's token endpoint again (within the deadline)."""
    async with asyncio.timeout(_DEADLINE_S):
        while True:
            if len(google.seen("/token")) > polls:
                return
            await asyncio.sleep(0.05)
