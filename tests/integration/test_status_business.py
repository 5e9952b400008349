"""The business page over real HTTP: the profile as the front desk uses it, behind the login.

The appliance is built as `appliance serve` builds it from `BUSINESS_FILE` (the example in the
repo, or one written here), its models not loaded: the page reads only the front desk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_asyncio
from markupsafe import escape

from appliance.settings import Settings
from tests.conftest import ROOT
from tests.support.status import Box, log_in, serve_box

EXAMPLE = ROOT / "business.example.toml"
CHRISTMAS_EVE_10AM = dt.datetime(2026, 12, 24, 10, 0, tzinfo=ZoneInfo("America/New_York"))
"""Open 8 AM to noon that day (a special day), and Christmas Day, closed, is in its week."""


def _with_profile(settings: Settings, business_file: Path) -> Settings:
    conversation = settings.conversation.model_copy(update={"business_file": business_file})
    return dataclasses.replace(settings, conversation=conversation)


@pytest_asyncio.fixture
async def business_box(app_settings: Settings) -> AsyncIterator[Box]:
    async for made in serve_box(_with_profile(app_settings, EXAMPLE)):
        yield made


@pytest_asyncio.fixture
async def box(app_settings: Settings) -> AsyncIterator[Box]:
    """No BUSINESS_FILE."""
    async for made in serve_box(app_settings):
        yield made


def _table(page: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of the table `table_id`."""
    found = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert found is not None, table_id
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", found[1], re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in rows
    ]


async def test_the_business_page_shows_the_profile_as_the_agent_uses_it(
    business_box: Box,
) -> None:
    box = business_box
    profile = box.app.front.profile
    assert profile is not None
    box.clock.ahead = CHRISTMAS_EVE_10AM.timestamp() - time.time()
    async with box.client() as http:
        away = await http.get("/business")
        assert away.status_code == 303
        assert away.headers["location"] == "/login?next=%2Fbusiness"
        await log_in(http)
        page = await http.get("/business")
        shown_at = profile.local(box.clock.wall())
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    text = page.text
    assert '<a href="/business" class="active">Business</a>' in text
    for fact in (
        "Maple Street Dental",
        "214 Maple Street, Suite 3, Springfield",
        "+1 555 010 0100",
    ):
        assert fact in text, fact
    assert "America/New_York" in text and "Thu 24 Dec, 10:00 EST" in text
    # Open now: the agent's own sentence, in the business's time zone.
    assert shown_at.date() == CHRISTMAS_EVE_10AM.date()
    said = profile.say_now(shown_at)
    assert said == "We're open right now, until noon."
    assert f'<p class="said" id="open-now">{escape(said)}</p>' in text
    assert '<span class="pill open" id="open-state">open now</span>' in text
    # The week from today, each day's hours from hours_on, holidays named.
    week = _table(text, "week")
    assert len(week) == 7
    assert week[0] == ["Thu 24 Dec today", "from 8 AM to noon Christmas Eve"]
    assert week[1] == ["Fri 25 Dec", "closed Christmas Day"]
    assert week[2] == ["Sat 26 Dec", "from 9 AM to 1 PM"]
    assert week[3] == ["Sun 27 Dec", "closed"]
    assert week[6] == ["Wed 30 Dec", "from 8 AM to noon and from 1 PM to 7 PM"]
    assert _table(text, "exceptions") == [
        ["Thu 24 Dec 2026", "Christmas Eve", "from 8 AM to noon"],
        ["Fri 25 Dec 2026", "Christmas Day", "closed"],
    ]
    services = _table(text, "services")
    assert ["Teeth whitening", "$350", "90 min", ""] in services and len(services) == 5
    assert ["Dr. Elena Park", "dentist", "+15550100142"] in _table(text, "people")
    assert "Do you take insurance?" in text and "entrance from Elm Road." in text
    assert "3 entries: all in the system prompt" in text
    assert "give medical or dental advice" in text and "put the caller through to a person" in text
    tools = [row[0] for row in _table(text, "tools")]
    assert tools == [tool.name for tool in box.app.front.tools]
    assert {"end_call", "get_current_time", "opening_hours", "get_weather"} <= set(tools)
    prompt = escape(box.app.front.persona.system_prompt)
    assert '<details id="prompt"><summary>' in text and prompt in text
    assert "No business profile is set" not in text


async def test_without_a_profile_the_page_says_how_to_set_one_up(box: Box) -> None:
    assert box.app.front.profile is None
    async with box.client() as http:
        await log_in(http)
        page = await http.get("/business")
    assert page.status_code == 200
    text = page.text
    assert "No business profile is set." in text
    assert "The agent knows only the business's name, <q>the front desk</q>" in text
    assert "copy <code>business.example.toml</code>" in text
    assert "set <code>BUSINESS_FILE</code> to its path" in text
    assert "Opening hours" not in text and 'id="open-now"' not in text
    # The time and the goodbye; what is remembered (callers are remembered by default).
    assert [row[0] for row in _table(text, "tools")] == [
        "end_call",
        "get_current_time",
        "what_you_remember",
        "forget_me",
    ]
    assert escape(box.app.front.persona.system_prompt) in text


HOSTILE = """
name = "Bob's <script>alert(1)</script> Garage"
address = "<img src=x onerror=alert(2)>"
timezone = "Europe/Zurich"
currency = "CHF"

[hours]
monday = "08:00-17:00"

[[services]]
name = "<b>Oil</b> change"
price = 80

[[people]]
name = "Workshop </td><script>alert(3)</script>"
role = "mechanics"
sip = "sip:workshop@pbx.example.com"

{faq}
"""


async def test_the_profile_is_escaped_and_a_long_faq_is_recalled(
    app_settings: Settings, tmp_path: Path
) -> None:
    faq = "\n".join(
        f'[[faq]]\nquestion = "Question {n} <i>?</i>"\nanswer = "Answer {n} <script>x()</script>"\n'
        for n in range(9)
    )
    business_file = tmp_path / "business.toml"
    business_file.write_text(HOSTILE.format(faq=faq), encoding="utf-8")
    async for box in serve_box(_with_profile(app_settings, business_file)):
        async with box.client() as http:
            await log_in(http)
            text = (await http.get("/business")).text
    assert "<script" not in text.lower() and "<img" not in text and "<b>" not in text
    assert "<i>" not in text
    assert "Bob&#39;s &lt;script&gt;alert(1)&lt;/script&gt; Garage" in text
    assert "<title>Business · Bob&#39;s &lt;script&gt;" in text  # the header's name, too
    assert "&lt;img src=x onerror=alert(2)&gt;" in text
    assert "&lt;b&gt;Oil&lt;/b&gt; change" in text
    assert ["<b>Oil</b> change", "80 CHF", "", ""] in _table(text, "services")
    assert [
        "Workshop </td><script>alert(3)</script>",
        "mechanics",
        "sip:workshop@pbx.example.com",
    ] in (_table(text, "people"))
    assert "Answer 8 &lt;script&gt;x()&lt;/script&gt;" in text
    assert "9 entries: more than 8, so each turn recalls the ones nearest the caller" in text
