"""A front desk for the language model: the example business, its real tools, and what callers ask.

The system prompt is the built-in persona with the example profile's facts, as a call gets it; the
tools are the real ones from appliance/tools (the weather tool over a forecaster that is never
asked: only the model's choice is checked here). Shared by the route's tests and
`bench/tool_route.py`, so the benchmark measures what the tests check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from appliance.conversation.persona import Persona
from appliance.conversation.ports import Message, ToolSpec
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import ToolRegistry
from appliance.tools.call import end_call
from appliance.tools.clock import current_time
from appliance.tools.hours import opening_hours
from appliance.tools.weather.ports import Forecast, Place
from appliance.tools.weather.tool import weather_tool
from tests.conftest import ROOT
from tests.support.hand_clock import HandClock

__all__ = ["CASES", "HOME", "Case", "arguments_fit", "front_desk"]


HOME = Place(39.80, -89.64, "Springfield")


class _NoForecasts:
    async def forecast(self, place: Place, timezone: str) -> Forecast:
        raise AssertionError("the desk's tools are offered to the model, never run")


@dataclass(frozen=True, slots=True)
class Case:
    said: str
    """What the caller said."""
    action: str
    """`speak` or the tool that must be called."""
    arguments: Mapping[str, str | None] = field(default_factory=dict)
    """Arguments the call must have: the value contains this, without case; None: left out,
    null, or the business's own place."""
    result: str = ""
    """The tool's answer, fed back to see that the model then speaks."""


CASES = (
    Case("Hello, who am I speaking to?", "speak"),
    Case("Do you take insurance?", "speak"),
    Case("How much is a filling?", "speak"),
    Case("Where are you located?", "speak"),
    Case("Is there parking?", "speak"),
    Case("Can you give me advice on a toothache?", "speak"),
    Case(
        "What time is it right now?",
        "get_current_time",
        result="It is 10:12 AM on Thursday, December 3, 2026.",
    ),
    Case(
        "Are you open on Saturday?",
        "opening_hours",
        {"day": "saturday"},
        result="On Saturday, December 5 we are open from 9 AM to 1 PM.",
    ),
    Case(
        "What are your hours on Thursday?",
        "opening_hours",
        {"day": "thursday"},
        result="Today, Thursday, we are open from 8 AM to 5 PM.",
    ),
    Case(
        "What's the weather going to be tomorrow?",
        "get_weather",
        {"day": "tomorrow", "place": None},
        result="Tomorrow in Springfield: light rain, a high of 8 and a low of 3 degrees.",
    ),
    Case(
        "Will it rain on Friday?",
        "get_weather",
        {"day": "friday", "place": None},
        result="Friday in Springfield: cloudy, a high of 6 and a low of 1 degrees.",
    ),
    Case(
        "Okay thanks, that's all, goodbye!",
        "end_call",
        result="Say goodbye.",
    ),
)


def front_desk() -> tuple[Message, list[ToolSpec]]:
    """The system message and tool specs of a call to the example business."""
    profile = BusinessProfile.load(ROOT / "business.example.toml")
    persona = Persona.load(agent_name="Sam", business_name=profile.name)
    clock = HandClock()
    zone = ZoneInfo(profile.timezone.key)
    registry = ToolRegistry(
        [
            current_time(clock, zone),
            end_call,
            opening_hours(profile, clock),
            weather_tool(
                _NoForecasts(),
                clock=clock,
                timezone=zone,
                home=HOME,
            ),
        ]
    )
    system = Message("system", f"{persona.system_prompt}\n\n{profile.facts_text()}")
    return system, list(registry.specs())


def arguments_fit(case: Case, arguments: str) -> bool:
    """Whether a call's JSON arguments say what the case asks for."""
    try:
        given = json.loads(arguments)
    except json.JSONDecodeError:
        return False
    if not isinstance(given, dict):
        return False
    for key, wanted in case.arguments.items():
        value = str(given.get(key) or "").strip().lower()
        if wanted is None:
            if value not in {"", "here", HOME.label.lower()}:
                return False
        elif wanted not in value:
            return False
    return True
