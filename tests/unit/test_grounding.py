"""The agent states no fact the call did not give it: `Grounding` and the gate that applies it."""

from __future__ import annotations

from pydantic import BaseModel

from appliance.conversation.events import SafetyChecked, ToolCalled, TurnCompleted
from appliance.conversation.grounding import Grounding
from appliance.conversation.ports import TextDelta
from appliance.conversation.tools import Tool, ToolContext
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import PERSONA, play_call
from tests.support.fakes import say, tool_call
from tests.unit.test_safety_guard import WordScreen

PROFILE = """Time zone Europe/London.
Bright Smile Dental, 14 Harbour Street, Millbrook. Phone 0161 555 0142.
Hours: Monday 09:00-17:30; Saturday 09:00-13:00. Filling: $180, 45 minutes.
People: Doctor Park (dentist)."""


def test_facts_from_the_profile_are_grounded_in_the_forms_they_are_said() -> None:
    known = Grounding([PROFILE])
    for sentence in (
        "We're at 14 Harbour Street in Millbrook.",
        "On Saturday we open at 9 AM and close at 1 PM.",
        "On Monday we close at 5:30 PM.",
        "A filling is $180 and takes 45 minutes.",
        "You can call us on 0161 555 0142.",
        "I'll put you through to Doctor Park.",
        "Sure, I can help with that. OK?",
        "Our time zone is the Europe/London one, LondonTime.",
    ):
        assert known.unsupported(sentence) == [], sentence


def test_an_answer_from_the_model_s_memory_is_not() -> None:
    known = Grounding([PROFILE, "Who won the football world cup in 2018?"])
    assert known.unsupported("The 2018 FIFA World Cup was won by France.") == ["FIFA", "France"]
    assert known.unsupported("A crown is $350.") == ["350"]
    assert known.unsupported("We close at 6 PM on Monday.") == ["6"]
    assert known.unsupported("We are in NewYork.") == ["NewYork"]
    # a phone number is one fact: its digits do not make "10" known, and it must be said whole
    assert known.unsupported("Come on Monday at 10:00 AM.") == ["10"]
    assert known.unsupported("Call 0161 555 0199.") == ["01615550199"]


def test_what_a_tool_returned_becomes_known() -> None:
    known = Grounding([PROFILE])
    assert known.unsupported("Tomorrow in Millbrook: light rain, 12 degrees.") == ["12"]
    known.add("Millbrook on 2026-12-08: light rain, high 12°C, low 7°C.")
    assert known.unsupported("Tomorrow in Millbrook: light rain, 12 degrees.") == []
    assert known.unsupported("On December 8 it will rain.") == []


def test_an_invented_fact_is_replaced_before_it_is_heard_and_audited() -> None:
    call = play_call(
        [Speak(say("help")), HangUp()],
        replies=[[TextDelta("Good question. "), TextDelta("It was won by France. "), "Bye."]],
        screen=WordScreen(),
    )
    candidates = ["Hello there.", "Good question.", "It was won by France.", PERSONA.ungrounded]
    assert call.played_sentences(candidates) == [
        "Hello there.",
        "Good question.",
        PERSONA.ungrounded,
    ]
    decisions = [
        (e.text, e.action, e.engine) for e in call.events(SafetyChecked) if e.layer == "agent"
    ]
    assert decisions == [
        ("Good question.", "allowed", "w"),
        ("It was won by France.", "replaced", "grounding"),
    ]


class _NoArguments(BaseModel):
    pass


def _weather(runs: list[str]) -> Tool:
    async def run(arguments: BaseModel, context: ToolContext) -> str:
        runs.append("get_weather")
        return "Sunny."

    return Tool(name="get_weather", description="The weather.", arguments=_NoArguments, run=run)


def test_a_fact_from_this_turn_s_tool_is_spoken() -> None:
    runs: list[str] = []
    call = play_call(
        [Speak(say("weather")), HangUp()],
        replies=[[tool_call("get_weather")], "It is Sunny today."],
        tools=[_weather(runs)],
        screen=WordScreen(),
    )
    assert runs == ["get_weather"]
    assert [e.name for e in call.events(ToolCalled)] == ["get_weather"]
    assert call.events(TurnCompleted)[0].reply == "It is Sunny today."
