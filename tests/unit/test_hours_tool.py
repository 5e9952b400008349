"""The opening-hours tool and the time tool answer on the business's clock, moved by hand."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import ToolContext, ToolRegistry
from appliance.tools.clock import current_time
from appliance.tools.hours import opening_hours
from tests.support.hand_clock import HandClock

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ToolContext(call=CallInfo("c", "wav", "x"))


def _utc(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()  # type: ignore[misc]


@pytest.fixture
def profile() -> BusinessProfile:
    """The example in the repo: a dental clinic in New York, closed on Sundays and Christmas."""
    return BusinessProfile.load(ROOT / "business.example.toml")


async def _ask(
    registry: ToolRegistry, name: str, arguments: dict[str, str], context: ToolContext = CONTEXT
) -> str:
    call = ToolCall(id="1", name=name, arguments=json.dumps(arguments))
    ok, said = await registry.run(call, registry.parse(call), context)
    assert ok, said
    return said


@pytest.mark.parametrize(
    ("day", "said"),
    [
        ("wednesday", "On Wednesday the 9th we're open from 8 AM to noon and from 1 PM to 7 PM."),
        ("next sunday", "We're closed on Sunday the 6th."),
        ("tomorrow", "Tomorrow, Saturday the 5th, we're open from 9 AM to 1 PM."),
        ("sunday", "We're closed on Sunday the 6th."),
        ("christmas", "We're closed on Christmas Day, Friday the 25th."),
        ("2026-12-24", "On Christmas Eve, Thursday the 24th, we're open from 8 AM to noon."),
        ("next monday", "On Monday the 7th we're open from 8 AM to 5 PM."),
    ],
)
async def test_opening_hours_on_a_day_the_caller_names(
    profile: BusinessProfile, day: str, said: str
) -> None:
    # 03:00 UTC on Saturday is still Friday 10 PM in New York: "tomorrow" is Saturday.
    clock = HandClock(_utc(2026, 12, 5, 3, 0))
    registry = ToolRegistry([opening_hours(profile, clock)])
    assert await _ask(registry, "opening_hours", {"day": day}) == said


async def test_opening_hours_with_no_day_says_whether_it_is_open_now(
    profile: BusinessProfile,
) -> None:
    clock = HandClock(_utc(2026, 12, 5, 15, 0))  # Saturday 10 AM in New York
    registry = ToolRegistry([opening_hours(profile, clock)])
    assert await _ask(registry, "opening_hours", {}) == (
        "We're open right now, until 1 PM. Today, Saturday the 5th, we're open from 9 AM to 1 PM."
    )
    clock.t = _utc(2026, 12, 5, 19, 0)  # 2 PM: closed until Monday
    assert await _ask(registry, "opening_hours", {"day": " "}) == (
        "We're closed right now; we open again on Monday the 7th at 8 AM. "
        "Today, Saturday the 5th, we're open from 9 AM to 1 PM."
    )


@pytest.mark.parametrize(
    ("caller", "day", "said"),
    [
        # The model's day is a part of the caller's: the caller's words decide.
        (
            "What are your hours on Christmas Eve?",
            "christmas",
            "On Christmas Eve, Thursday the 24th, we're open from 8 AM to noon.",
        ),
        # A day the model chose that the caller did not say is the model's to ask about.
        ("Are you open on Christmas Eve?", "christmas day", "We're closed on Christmas Day, "
         "Friday the 25th."),
        ("And how about Sunday?", "sunday", "We're closed on Sunday the 6th."),
    ],
)  # fmt: skip
async def test_the_callers_own_words_name_the_day_the_model_shortened(
    profile: BusinessProfile, caller: str, day: str, said: str
) -> None:
    clock = HandClock(_utc(2026, 12, 5, 3, 0))
    registry = ToolRegistry([opening_hours(profile, clock)])
    context = ToolContext(call=CallInfo("c", "wav", "x"), caller_said={1: "Hi.", 2: caller})
    assert await _ask(registry, "opening_hours", {"day": day}, context) == said


async def test_a_day_that_cannot_be_worked_out_is_said_so(profile: BusinessProfile) -> None:
    registry = ToolRegistry([opening_hours(profile, HandClock(_utc(2026, 12, 5, 15, 0)))])
    said = await _ask(registry, "opening_hours", {"day": "someday"})
    assert said.startswith('"someday" is not a day that can be worked out')


def test_the_tool_takes_one_optional_day_and_nothing_called_name(
    profile: BusinessProfile,
) -> None:
    spec = opening_hours(profile, HandClock()).spec
    assert spec.name == "opening_hours"
    assert list(spec.parameters["properties"]) == ["day"]
    assert "required" not in spec.parameters
    assert spec == opening_hours(profile, HandClock()).spec  # the same every turn


@pytest.mark.parametrize(
    ("at", "said"),
    [
        (_utc(2026, 12, 5, 9, 3), "It is 4:03 AM on Saturday, December 5, 2026."),
        (_utc(2026, 7, 4, 16, 30), "It is 12:30 PM on Saturday, July 4, 2026."),  # EDT
        (_utc(2026, 11, 1, 5, 30), "It is 1:30 AM on Sunday, November 1, 2026."),  # EDT, once
        (_utc(2026, 11, 1, 6, 30), "It is 1:30 AM on Sunday, November 1, 2026."),  # EST, again
    ],
)
async def test_the_time_is_told_in_the_business_time_zone(
    profile: BusinessProfile, at: float, said: str
) -> None:
    registry = ToolRegistry([current_time(HandClock(at), profile.timezone)])
    assert await _ask(registry, "get_current_time", {}) == said
