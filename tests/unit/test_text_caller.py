"""Texting the caller their appointment, or this call's transcript or summary after it ends.

The model chooses only what; the words come from the calendar, the profile or the call's record,
and go only to the number the call comes from, after a read-back and the caller's yes. It is
Tuesday 8 December 2026, 10 AM in New York.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from appliance.app.front import front_desk
from appliance.bookings import Appointment
from appliance.conversation.events import ToolReadBack, TurnCompleted
from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import Tool, ToolContext, ToolRegistry
from appliance.memory.actions import ActionRecord
from appliance.memory.postcall import texts_asked
from appliance.settings import ConversationSettings, IntegrationSettings
from appliance.telephony.wavfile import HangUp, Speak
from appliance.tools.text_caller import AFTER_CALL, TEXT_TOOL, text_the_caller
from tests.conftest import ROOT
from tests.support.calls import play_call
from tests.support.fakes import say, tool_call
from tests.support.hand_clock import HandClock

ZONE = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 12, 8, 10, tzinfo=ZONE)
ANN = "+15550100123"
BOB = "+15550100456"
PROFILE = BusinessProfile.model_validate(
    {"name": "Bright Cuts", "timezone": "America/New_York", "address": "12 Harbour Road, Leith"}
)
ENDING = "the number you're calling from, ending in 0 1 2 3"


def _at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, tzinfo=ZONE)


def _booked(caller: str, service: str, day: int, hour: int) -> Appointment:
    start, uid = _at(day, hour), f"{caller}-{day}-{hour}"
    return Appointment(uid, start, start + dt.timedelta(minutes=30), service, caller)


@dataclass
class Diary:
    """A calendar in memory (the booking tools' port); `down` makes it fail as a server would."""

    held: list[Appointment] = field(default_factory=list)
    down: bool = False

    async def between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        if self.down:
            raise RuntimeError("the calendar cannot be reached right now")
        return [a for a in self.held if a.overlaps(start, end)]


@dataclass
class Outbox:
    texts: list[tuple[str, str]] = field(default_factory=list)

    async def send_sms(self, to: str, body: str) -> str:
        self.texts.append((to, body))
        return f"SM{len(self.texts)}"


def _tool(outbox: Outbox, diary: Diary | None = None, *, after_call: bool = True) -> Tool:
    tool = text_the_caller(
        PROFILE, outbox, clock=HandClock(NOW.timestamp()), bookings=diary, after_call=after_call
    )
    assert tool is not None
    return tool


def _call(caller: str = ANN, *, vouched: bool = True) -> ToolContext:
    return ToolContext(call=CallInfo(call_id="c1", line="sip", caller=caller, vouched=vouched))


async def _readback(tool: Tool, what: str, context: ToolContext) -> str | None:
    assert tool.readback is not None
    said = tool.readback(tool.arguments.model_validate({"what": what}), context)
    assert not isinstance(said, str | None)
    return await said


async def _run(tool: Tool, what: str, context: ToolContext) -> str:
    return await tool.run(tool.arguments.model_validate({"what": what}), context)


async def test_the_appointment_is_read_back_then_texted_as_the_calendar_has_it() -> None:
    outbox = Outbox()
    diary = Diary([_booked(BOB, "Colour", 9, 11), _booked(ANN, "Haircut", 9, 15)])
    tool = _tool(outbox, diary)
    ann = _call()
    assert await _readback(tool, "my appointment", ann) == (
        f"I'll text the details of your haircut on Wednesday the 9th at 3 PM to {ENDING}. "
        "Shall I send it?"
    )
    assert outbox.texts == []  # nothing before the yes
    result = await _run(tool, "my appointment", ann)
    assert result == "Sent: the caller's appointment details were texted to them (SM1)."
    assert outbox.texts == [
        (
            ANN,
            "Bright Cuts: your appointment\nHaircut, Wednesday 9 December 2026 at 3 PM\n"
            "12 Harbour Road, Leith",
        )
    ]


async def test_only_the_callers_own_upcoming_appointments_are_in_the_text() -> None:
    outbox = Outbox()
    diary = Diary(
        [
            _booked(ANN, "Colour", 7, 9),  # yesterday: not upcoming
            _booked(ANN, "Haircut", 11, 8),
            _booked(BOB, "Haircut", 10, 9),
            _booked(ANN, "Colour", 15, 14),
        ]
    )
    tool = _tool(outbox, diary)
    said = await _readback(tool, "my appointment", _call())
    assert (
        said is not None
        and "of your haircut on Friday the 11th at 8 AM and the one after it to" in said
    )
    await _run(tool, "my appointment", _call())
    ((to, body),) = outbox.texts
    assert to == ANN
    assert body.splitlines()[:3] == [
        "Bright Cuts: your appointments",
        "Haircut, Friday 11 December 2026 at 8 AM",
        "Colour, Tuesday 15 December 2026 at 2 PM",
    ]
    assert "Monday 7" not in body and "Thursday 10" not in body


async def test_with_no_appointment_there_is_nothing_to_confirm_and_nothing_is_sent() -> None:
    outbox = Outbox()
    tool = _tool(outbox, Diary([_booked(BOB, "Haircut", 9, 15)]))
    assert await _readback(tool, "my appointment", _call()) is None
    assert await _run(tool, "my appointment", _call()) == (
        "Not sent: there is no upcoming appointment booked from the caller's number."
    )
    assert outbox.texts == []


@pytest.mark.parametrize("what", ["address", "my appointment", "the transcript", "a summary"])
async def test_a_withheld_number_gets_no_read_back_and_no_text(what: str) -> None:
    outbox = Outbox()
    tool = _tool(outbox, Diary([_booked(ANN, "Haircut", 9, 15)]))
    withheld = _call("anonymous")
    assert await _readback(tool, what, withheld) is None
    assert "withheld" in await _run(tool, what, withheld)
    assert outbox.texts == []


@pytest.mark.parametrize("what", ["my appointment", "the transcript", "a summary"])
async def test_on_a_line_that_does_not_vouch_for_the_number_only_the_profiles_facts_go(
    what: str,
) -> None:
    outbox = Outbox()
    tool = _tool(outbox, Diary([_booked(ANN, "Haircut", 9, 15)]))
    spoofable = _call(vouched=False)
    assert await _readback(tool, what, spoofable) is None
    assert "cannot be confirmed on this line" in await _run(tool, what, spoofable)
    assert outbox.texts == []
    assert await _readback(tool, "address", spoofable) is not None  # the profile's, as before


async def test_the_model_cannot_choose_where_the_text_goes() -> None:
    outbox = Outbox()
    registry = ToolRegistry([_tool(outbox, Diary([_booked(ANN, "Haircut", 9, 15)]))])
    call = ToolCall(
        id="1", name=TEXT_TOOL, arguments=json.dumps({"what": "my appointment", "to": BOB})
    )
    assert "to" not in registry.parse(call).model_dump()
    ok, _ = await registry.run(call, registry.parse(call), _call())
    assert ok and [to for to, _ in outbox.texts] == [ANN]


@pytest.mark.parametrize("what", AFTER_CALL)
async def test_the_transcript_or_summary_is_promised_for_after_the_call_not_sent(
    what: str,
) -> None:
    outbox = Outbox()
    tool = _tool(outbox)
    assert await _readback(tool, what, _call()) == (
        f"I'll text {what} of this call to {ENDING}, once we hang up. Shall I?"
    )
    result = await _run(tool, what, _call())
    assert result.startswith("Not sent yet:")
    assert "after the call ends" in result and "nothing is sent during it" in result
    assert outbox.texts == []


def test_only_what_this_box_can_text_is_offered() -> None:
    bare = text_the_caller(PROFILE, Outbox(), clock=HandClock())
    assert bare is not None
    for what in ("my appointment", "the transcript", "a summary", "phone number"):
        with pytest.raises(ValidationError):
            bare.arguments.model_validate({"what": what})
    nothing = BusinessProfile.model_validate({"name": "Bright Cuts", "timezone": "UTC"})
    assert text_the_caller(nothing, Outbox(), clock=HandClock()) is None
    full = _tool(Outbox(), Diary())
    schema = full.spec.parameters["properties"]["what"]
    assert schema["enum"] == ["address", "my appointment", "the transcript", "a summary"]


async def test_every_choice_counts_under_the_one_texting_limit() -> None:
    registry = ToolRegistry([_tool(Outbox(), Diary([_booked(ANN, "Haircut", 9, 15)]))])

    def asked(what: str) -> ToolCall:
        return ToolCall(id=what, name=TEXT_TOOL, arguments=json.dumps({"what": what}))

    first = _call()
    for what in ("address", "the transcript"):
        assert registry.refusal(asked(what), first) is None
        await registry.run(asked(what), registry.parse(asked(what)), first)
    refused = registry.refusal(asked("my appointment"), first)
    assert refused is not None and "on one call (2)" in refused
    # Ringing back does not reset it: three texts a caller a day, whatever was asked for.
    again = _call()
    await registry.run(asked("a summary"), registry.parse(asked("a summary")), again)
    refused = registry.refusal(asked("my appointment"), again)
    assert refused is not None and "for this caller today (3)" in refused


async def test_a_calendar_that_cannot_be_reached_is_said_and_nothing_is_sent() -> None:
    outbox = Outbox()
    registry = ToolRegistry([_tool(outbox, Diary(down=True))])
    call = ToolCall(id="1", name=TEXT_TOOL, arguments='{"what": "my appointment"}')
    arguments = registry.parse(call)
    assert await registry.readback(call, arguments, _call()) is None
    ok, result = await registry.run(call, arguments, _call())
    assert not ok and "cannot be reached" in result
    assert outbox.texts == []


def _action(what: str, ok: bool | None) -> ActionRecord:
    arguments = json.dumps({"what": what})
    return ActionRecord(turn=2, kind="tool", name=TEXT_TOOL, arguments=arguments, ok=ok, result="")


def test_the_post_call_job_finds_what_the_caller_asked_for_in_the_calls_record() -> None:
    """The job (memory) and the tool (tools) cannot import each other: their words must agree."""
    assert texts_asked([_action(what, True) for what in AFTER_CALL]) == set(AFTER_CALL)
    # Read back but never run (no yes, or the limit): nothing is texted after the call.
    assert texts_asked([_action("the transcript", None)]) == set()
    assert texts_asked([_action("address", True), _action("my appointment", True)]) == set()


APPOINTMENT_ASKED = [tool_call(TEXT_TOOL, '{"what": "my appointment"}')]


@pytest.mark.parametrize(("answer", "texted"), [("yes", True), ("no", False)])
def test_in_a_call_the_text_goes_only_after_the_callers_yes(answer: str, texted: bool) -> None:
    outbox = Outbox()
    call = play_call(
        [Speak(say("book", "more")), Speak(say(answer)), HangUp()],
        replies=[APPOINTMENT_ASKED, "All done."],
        tools=[_tool(outbox, Diary([_booked(ANN, "Haircut", 9, 15)]))],
        info=CallInfo(call_id="c1", line="sip", caller=ANN, vouched=True),
    )
    (readback,) = call.events(ToolReadBack)
    assert readback.text.startswith("I'll text the details of your haircut on Wednesday the 9th")
    assert call.events(TurnCompleted)[0].reply == readback.text
    assert bool(outbox.texts) is texted
    assert all(to == ANN for to, _ in outbox.texts)


@pytest.mark.parametrize(
    ("caldav", "choices"),
    [
        ("", ["address", "phone number", "the transcript", "a summary"]),
        (
            "http://127.0.0.1:9/dav/",
            ["address", "phone number", "my appointment", "the transcript", "a summary"],
        ),
    ],
)
def test_the_front_desk_offers_the_appointment_where_it_books(
    caldav: str, choices: list[str]
) -> None:
    # Nothing is asked of the server at start: it is first reached when a tool needs it.
    desk = front_desk(
        ConversationSettings(business_file=ROOT / "business.example.toml"),
        IntegrationSettings(caldav_url=caldav or None),
        clock=HandClock(),
        texter=Outbox(),
    )
    (texting,) = [tool for tool in desk.tools if tool.name == TEXT_TOOL]
    assert texting.spec.parameters["properties"]["what"]["enum"] == choices
    prompt = desk.persona.system_prompt
    assert "use text_the_caller" in prompt
    assert ("their appointment" in prompt) is ("my appointment" in choices)
