"""The front desk built from the settings and the business profile: prompt, tools, errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from appliance.app.front import FrontDesk, front_desk
from appliance.conversation.events import ToolFinished, TurnCompleted
from appliance.conversation.ports import Recollection
from appliance.conversation.profile import ProfileError
from appliance.conversation.session import SessionConfig
from appliance.doctor import checks
from appliance.settings import ConversationSettings, IntegrationSettings, Settings
from appliance.telephony.wavfile import HangUp, Speak
from tests.conftest import ROOT
from tests.support.calls import play_call
from tests.support.fakes import say, tool_call
from tests.support.hand_clock import HandClock

EXAMPLE = ROOT / "business.example.toml"


def _desk(business_file: Path | None = EXAMPLE, clock: HandClock | None = None) -> FrontDesk:
    return front_desk(
        ConversationSettings(agent_name="Sam", business_file=business_file),
        IntegrationSettings(),
        clock=clock or HandClock(),
    )


def test_the_profile_is_in_the_system_prompt_and_its_tools_are_offered() -> None:
    desk = _desk()
    prompt = desk.persona.system_prompt
    assert desk.profile is not None
    assert "Maple Street Dental" in prompt and "214 Maple Street" in prompt
    assert "Teeth whitening, $350, 90 minutes" in prompt
    assert "Dr. Elena Park (dentist)" in prompt
    # Hours are the tool's to answer, day by day: the prompt never holds them.
    assert "09:00" not in prompt and "9 AM" not in prompt
    assert [tool.name for tool in desk.tools] == [
        "end_call",
        "get_current_time",
        "transfer_to_person",
        "opening_hours",
        "get_weather",
    ]
    assert "use transfer_to_person" in prompt
    assert "Hello, this is Sam at Maple Street Dental." in desk.persona.greeting


def test_without_a_profile_the_agent_has_only_its_name_the_time_and_the_goodbye() -> None:
    desk = _desk(None)
    assert desk.profile is None
    assert [tool.name for tool in desk.tools] == ["end_call", "get_current_time"]
    assert "What you know about the business" not in desk.persona.system_prompt
    assert "the front desk" in desk.persona.greeting


def test_a_profile_without_a_location_has_no_weather_tool(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    start = text.index("\n[location]\n")
    path = tmp_path / "business.toml"
    path.write_text(text[:start] + text[text.index("\n[hours]\n") :])
    assert "get_weather" not in _desk(path).tools


def test_a_broken_profile_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "business.toml"
    path.write_text(EXAMPLE.read_text().replace('saturday = "09:00-13:00"', 'saturday = "9-1"'))
    with pytest.raises(ProfileError, match=r"line \d+") as raised:
        _desk(path)
    assert "9-1" in str(raised.value)


def test_the_doctor_checks_the_profile(tmp_path: Path) -> None:
    broken = tmp_path / "business.toml"
    broken.write_text('name = "Clinic"\ntimezone = "Mars/Olympus"\n')
    found = {
        path: next(c for c in checks(_settings(tmp_path, path)) if c.name == "business profile")
        for path in (EXAMPLE, broken, None)
    }
    assert found[EXAMPLE].level == "OK" and "Maple Street Dental" in found[EXAMPLE].detail
    assert found[broken].level == "FAIL" and "line 2" in found[broken].detail
    assert found[None].level == "WARN" and "BUSINESS_FILE" in found[None].detail


def _settings(tmp_path: Path, business_file: Path | None) -> Settings:
    return dataclasses.replace(
        Settings.load(None), conversation=ConversationSettings(business_file=business_file)
    )


def test_prompt_and_tools_are_the_same_bytes_on_every_turn_and_hours_come_from_code() -> None:
    clock = HandClock(dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC).timestamp())  # a Thursday
    desk = _desk(clock=clock)
    call = play_call(
        [Speak(say("time")), Speak(say("hello")), HangUp()],
        replies=[
            [tool_call("opening_hours", '{"day": "saturday"}')],
            "We open at nine on Saturday.",
            "You're welcome.",
        ],
        config=SessionConfig(persona=desk.persona),
        tools=list(desk.tools),
    )
    (finished,) = call.events(ToolFinished)
    assert finished.ok
    assert finished.result == "On Saturday the 5th we're open from 9 AM to 1 PM."
    assert len(call.events(TurnCompleted)) == 2
    seen = call.fakes.llm.seen
    assert len(seen) == 3  # the tool round, its answer, the second turn
    assert {prompt[0].content for prompt in seen} == {desk.persona.system_prompt}
    offered = call.fakes.llm.tools_seen
    assert {json.dumps([dataclasses.asdict(t) for t in specs]) for specs in offered} == {
        json.dumps([dataclasses.asdict(t) for t in desk.tools.specs()])
    }


class _Both:
    """Recalls one FAQ entry and one thing about the caller."""

    async def recall(self, said: str) -> list[Recollection]:
        return [
            Recollection(
                text="Q: Parking? A: Behind the building.",
                call_id="",
                distance=0.1,
                source="business",
            ),
            Recollection(text="Prefers mornings.", call_id="c1", distance=0.1),
        ]


def test_recalled_faq_and_caller_memory_reach_the_turn_under_their_own_headings() -> None:
    call = play_call([Speak(say("hello")), HangUp()], replies=["Sure."], recall=_Both())
    added = [m.content for m in call.fakes.llm.seen[0] if m.role == "system"][1:]
    assert added == [
        "From the business's answers to common questions:\n- Q: Parking? A: Behind the building.",
        "From earlier calls with this caller:\n- Prefers mornings.",
    ]


class _NothingKept:
    async def kept_about(self, number: str) -> None:
        return None

    async def forget(self, number: str) -> None:
        return None


def test_a_box_that_remembers_callers_lets_them_ask_what_and_forget() -> None:
    desk = front_desk(
        ConversationSettings(business_file=EXAMPLE),
        IntegrationSettings(),
        clock=HandClock(),
        memory=_NothingKept(),  # type: ignore[arg-type]
    )
    names = [tool.name for tool in desk.tools]
    assert {"what_you_remember", "forget_me"} <= set(names)
    assert "what_you_remember" not in [tool.name for tool in _desk().tools]


def test_a_caldav_calendar_brings_the_booking_tools_and_the_prompt_says_to_use_them() -> None:
    # Nothing is asked of the server at start: it is first reached when a tool needs it.
    desk = front_desk(
        ConversationSettings(agent_name="Sam", business_file=EXAMPLE),
        IntegrationSettings(caldav_url="http://127.0.0.1:9/dav/"),
        clock=HandClock(),
    )
    names = [tool.name for tool in desk.tools]
    for name in ("find_free_times", "book_appointment", "move_appointment", "cancel_appointment"):
        assert name in names
    prompt = desk.persona.system_prompt
    assert "use find_free_times, then book_appointment" in prompt
    assert "(such as bookings)" not in prompt
    assert "find_free_times" not in [tool.name for tool in _desk().tools]
