"""Bookings against a real CalDAV server (Radicale, on loopback): every scenario checks what the
calendar holds afterwards, read back through `caldav`, and what it must not hold.

It is Tuesday 8 December 2026, 10 AM in New York. The business is open 9 AM to 5 PM on weekdays
(and 7 PM to 9 PM on Fridays), 10 AM to noon on Saturdays, closed on Sundays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import caldav
import pytest

from appliance.bookings import CalDavCalendar, booking_tools
from appliance.conversation.events import ToolFinished, TurnCompleted
from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import ToolContext, ToolRegistry
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import play_call
from tests.support.fakes import say, tool_call
from tests.support.hand_clock import HandClock
from tests.support.radicale import PASSWORD, USER, Radicale

ZONE = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 12, 8, 10, tzinfo=ZONE)
ANN = "+15550100123"
BOB = "+15550100456"
PROFILE = BusinessProfile.model_validate(
    {
        "name": "Bright Cuts",
        "timezone": "America/New_York",
        "hours": {
            **dict.fromkeys(("monday", "tuesday", "wednesday", "thursday"), "09:00-17:00"),
            "friday": ["08:00-12:00", "19:00-21:00"],
            "saturday": "10:00-12:00",
        },
        "services": [{"name": "Haircut", "minutes": 30}, {"name": "Colour", "minutes": 90}],
    }
)


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    server = Radicale(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Held:
    """An event as the server holds it."""

    start: dt.datetime
    summary: str
    caller: str
    uid: str


def _held(calendar: caldav.Calendar) -> list[Held]:
    found = []
    for event in calendar.events():
        part = event.icalendar_component
        found.append(
            Held(
                start=part["DTSTART"].dt.astimezone(ZONE),
                summary=str(part.get("SUMMARY", "")),
                caller=str(part.get("X-TEL3SIS-CALLER", "")),
                uid=str(part["UID"]),
            )
        )
    return sorted(found, key=lambda held: held.start)


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=ZONE)


class Desk:
    """The booking tools on the Radicale calendar, run the way a call runs them."""

    def __init__(self, server: Radicale, *, password: str = PASSWORD, url: str = "") -> None:
        self.calendar = CalDavCalendar(url or server.url, username=USER, password=password)
        self.clock = HandClock(NOW.timestamp())
        self.tools = ToolRegistry(booking_tools(PROFILE, self.calendar, clock=self.clock))

    def call(self, caller: str = ANN, *, vouched: bool = True) -> ToolContext:
        return ToolContext(
            call=CallInfo(call_id=f"call-{caller}", line="sip", caller=caller, vouched=vouched)
        )

    async def ask(
        self, context: ToolContext, name: str, **arguments: str
    ) -> tuple[str | None, ToolCall]:
        """The read-back the caller would hear (None: nothing to confirm, the tool said why)."""
        call = ToolCall(id="1", name=name, arguments=json.dumps(arguments))
        parsed = self.tools.parse(call)
        return await self.tools.readback(call, parsed, context), call

    async def yes(self, context: ToolContext, call: ToolCall) -> str:
        """The tool run, as on the caller's yes (or at once, when there was no read-back)."""
        ok, result = await self.tools.run(call, self.tools.parse(call), context)
        assert ok, result
        return result

    async def find(self, service: str, day: str) -> str:
        return await self.yes(
            self.call(),
            ToolCall(
                id="f",
                name="find_free_times",
                arguments=json.dumps({"service": service, "day": day}),
            ),
        )


async def test_booking_reads_back_then_the_calendar_holds_exactly_that(radicale: Radicale) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    free = await desk.find("haircut", "tomorrow")
    assert free.startswith("Free on Wednesday the 9th: 9 AM, 9:30 AM, 10 AM")
    ann = desk.call()
    readback, call = await desk.ask(
        ann, "book_appointment", service="haircut", day="tomorrow", time="3 pm"
    )
    assert readback == "That's Wednesday the 9th at 3 PM for a haircut. Shall I book it?"
    assert _held(calendar) == []  # nothing before the yes
    assert await desk.yes(ann, call) == "Booked: Wednesday the 9th at 3 PM for a haircut."
    (held,) = _held(calendar)
    assert (held.start, held.summary, held.caller) == (_at(9, 15), "Haircut", ANN)
    assert "3 PM" not in await desk.find("haircut", "tomorrow")


async def test_moving_changes_only_the_callers_own_appointment(radicale: Radicale) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    for who, time in ((ANN, "3 pm"), (BOB, "4 pm")):
        _, call = await desk.ask(
            desk.call(who), "book_appointment", service="haircut", day="wednesday", time=time
        )
        await desk.yes(desk.call(who), call)
    before = {held.caller: held for held in _held(calendar)}
    ann = desk.call()
    readback, call = await desk.ask(ann, "move_appointment", day="thursday", time="at 11")
    assert readback == (
        "I'll move your haircut from Wednesday the 9th at 3 PM to Thursday the 10th at 11 AM. "
        "Shall I?"
    )
    assert await desk.yes(ann, call) == "Moved: your haircut is now Thursday the 10th at 11 AM."
    after = {held.caller: held for held in _held(calendar)}
    assert after[ANN].start == _at(10, 11) and after[ANN].uid == before[ANN].uid
    assert after[BOB] == before[BOB]
    assert len(_held(calendar)) == 2  # moved, not copied: nothing left at 3 PM on Wednesday


async def test_only_a_vouched_caller_can_move_or_cancel(radicale: Radicale) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    _, call = await desk.ask(
        desk.call(), "book_appointment", service="haircut", day="wednesday", time="3 pm"
    )
    await desk.yes(desk.call(), call)
    before = _held(calendar)
    spoofed = desk.call(vouched=False)
    for name, arguments in (
        ("move_appointment", {"day": "thursday", "time": "11 am"}),
        ("cancel_appointment", {}),
    ):
        readback, call = await desk.ask(spoofed, name, **arguments)
        assert readback is None
        assert "in person" in await desk.yes(spoofed, call)
    assert _held(calendar) == before


async def test_cancelling_removes_the_callers_appointment_and_no_one_elses(
    radicale: Radicale,
) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    for who in (ANN, BOB):
        _, call = await desk.ask(
            desk.call(who),
            "book_appointment",
            service="colour",
            day="thursday",
            time="9" if who == ANN else "1 pm",
        )
        await desk.yes(desk.call(who), call)
    ann = desk.call()
    readback, call = await desk.ask(ann, "cancel_appointment")
    assert readback == "I'll cancel your colour on Thursday the 10th at 9 AM. Shall I?"
    assert await desk.yes(ann, call) == "Cancelled: your colour on Thursday the 10th at 9 AM."
    (left,) = _held(calendar)
    assert (left.caller, left.start) == (BOB, _at(10, 13))
    readback, call = await desk.ask(ann, "cancel_appointment")
    assert readback is None
    assert "no upcoming appointment" in await desk.yes(ann, call)


async def test_a_fully_booked_day_offers_the_next_free_time_and_books_nothing(
    radicale: Radicale,
) -> None:
    calendar = radicale.calendar()
    calendar.save_event(
        dtstart=_at(12, 10), dtend=_at(12, 12), summary="Staff training", uid="training@test"
    )
    desk = Desk(radicale)
    assert await desk.find("haircut", "saturday") == (
        "Saturday the 12th is fully booked. The next free time is Monday the 14th at 9 AM."
    )
    ann = desk.call()
    readback, call = await desk.ask(
        ann, "book_appointment", service="haircut", day="saturday", time="10 am"
    )
    assert readback is None
    assert (await desk.yes(ann, call)).startswith("Not done: Saturday the 12th at 10 AM is taken.")
    assert [held.summary for held in _held(calendar)] == ["Staff training"]


@pytest.mark.parametrize(
    ("day", "time", "why"),
    [
        ("tomorrow", "7 pm", "outside our hours"),
        ("sunday", "11 am", "We're closed on Sunday the 13th."),
        ("tomorrow", "4:45 pm", "outside our hours for a 30-minute service"),  # ends after 5
        ("today", "9 am", "has passed"),
        ("whenever", "9 am", "is not a day"),
    ],
)
async def test_outside_hours_or_in_the_past_nothing_is_read_back_or_booked(
    radicale: Radicale, day: str, time: str, why: str
) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    readback, call = await desk.ask(
        desk.call(), "book_appointment", service="haircut", day=day, time=time
    )
    assert readback is None
    said = await desk.yes(desk.call(), call)
    assert said.startswith("Not done:") and why in said
    assert _held(calendar) == []


async def test_an_ambiguous_time_is_settled_by_the_hours_or_asked(radicale: Radicale) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    ann = desk.call()
    # "at 3" on a Wednesday: 3 AM is closed, so it is 3 PM.
    readback, _ = await desk.ask(
        ann, "book_appointment", service="haircut", day="wednesday", time="at 3"
    )
    assert readback == "That's Wednesday the 9th at 3 PM for a haircut. Shall I book it?"
    # "at 8" on Friday: open at 8 AM and at 8 PM, so the caller is asked.
    readback, call = await desk.ask(
        ann, "book_appointment", service="haircut", day="friday", time="at 8"
    )
    assert readback is None
    assert "8 in the morning or in the evening?" in await desk.yes(ann, call)
    assert _held(calendar) == []


@pytest.mark.parametrize(("answer", "booked"), [(("no",), 0), (("yes",), 1)])
def test_at_the_readback_only_a_yes_books(
    radicale: Radicale, answer: tuple[str, ...], booked: int
) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    book = tool_call(
        "book_appointment", '{"service": "haircut", "day": "tomorrow", "time": "3 pm"}'
    )
    call = play_call(
        [Speak(say("book")), Speak(say(*answer)), HangUp()],
        replies=[[book], "All right."],
        tools=list(desk.tools),
        info=CallInfo(call_id="c", line="sip", caller=ANN, vouched=True),
        thread_grace_s=0.002,
    )
    replies = [event.reply for event in call.events(TurnCompleted)]
    assert replies[0] == "That's Wednesday the 9th at 3 PM for a haircut. Shall I book it?"
    held = _held(calendar)
    assert len(held) == booked
    assert [e.ok for e in call.events(ToolFinished)] == [True] * booked
    if booked:
        assert (held[0].start, held[0].caller) == (_at(9, 15), ANN)


async def test_two_calls_booking_the_same_slot_at_once_get_it_once(radicale: Radicale) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale)
    ann, bob = desk.call(ANN), desk.call(BOB)
    asked = [
        await desk.ask(who, "book_appointment", service="haircut", day="tomorrow", time="3 pm")
        for who in (ann, bob)
    ]
    assert all(readback is not None for readback, _ in asked)  # both were offered 3 PM
    results = await asyncio.gather(desk.yes(ann, asked[0][1]), desk.yes(bob, asked[1][1]))
    booked, refused = sorted(results)
    assert booked == "Booked: Wednesday the 9th at 3 PM for a haircut."
    assert refused.startswith("Not done: Wednesday the 9th at 3 PM was just taken. Free on")
    (held,) = _held(calendar)
    assert held.start == _at(9, 15)


@pytest.mark.parametrize(
    ("password", "url", "why"),
    [
        ("wrong", "", "the calendar refused our login"),
        (PASSWORD, "http://127.0.0.1:9/", "the calendar cannot be reached right now"),
    ],
)
async def test_a_calendar_that_refuses_or_is_down_is_said_so_and_nothing_is_booked(
    radicale: Radicale, password: str, url: str, why: str
) -> None:
    calendar = radicale.calendar()
    desk = Desk(radicale, password=password, url=url)
    assert why in await desk.find("haircut", "tomorrow")
    readback, call = await desk.ask(
        desk.call(), "book_appointment", service="haircut", day="tomorrow", time="3 pm"
    )
    assert readback is None
    assert why in await desk.yes(desk.call(), call)
    assert _held(calendar) == []
