"""The booking tools: free times, and booking, moving or cancelling the caller's appointment.

The model passes the caller's words (a service, "next tuesday", "at 3"); days, times, opening
hours and free slots are worked out here, in the business's time zone. Booking, moving and
cancelling have a read-back ("That's Tuesday the 9th at 3 PM for a haircut. Shall I book it?")
and run only on the caller's yes (`think.py`). The read-back is worked out against the calendar
and remembered: the tool then does exactly what was read back, and when the read-back found
nothing to do (a closed day, a taken time, an ambiguous "3") it only says why. Writes happen
under one lock with the slot checked again, so two calls that were both offered 3 PM cannot both
get it: the second is told it was just taken.

A caller's own appointment is found by their number, and only on a call whose line vouches for
that number: a caller ID alone is not an identity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, Field

from appliance.bookings.calendar import Appointment, Calendar, CalendarUnavailable
from appliance.bookings.slots import at_local, day_bounds, free_starts, starts_in_hours
from appliance.bookings.times import clock_times
from appliance.clock import Clock
from appliance.conversation.days import spoken_date, spoken_time
from appliance.conversation.profile import BusinessProfile, Service, is_phone_number
from appliance.conversation.tools import Tool, ToolContext

__all__ = ["DEFAULT_MINUTES", "booking_tools"]

DEFAULT_MINUTES = 30
"""How long a service takes when the profile does not say."""
_SAY_AT_MOST = 8
_LOOK_AHEAD_DAYS = 14
_OWN_AHEAD_DAYS = 366
_EVENING = 17
_PLANS_KEPT = 256
"""From 5 PM, a PM time is "in the evening"."""


class _FindArgs(BaseModel):
    service: str | None = Field(
        default=None, description="The service the caller wants, as in our list of services."
    )
    day: str = Field(description='The day in the caller\'s words: "tomorrow", "next tuesday".')


class _BookArgs(_FindArgs):
    time: str = Field(description='The time in the caller\'s words: "3 pm", "at 3", "noon".')


class _MoveArgs(BaseModel):
    day: str = Field(description="The new day, in the caller's words.")
    time: str = Field(description="The new time, in the caller's words.")


class _NoArgs(BaseModel):
    pass


class _Refused(Exception):
    """Nothing can be done as asked; the message says why, for the model."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a read-back promised: save `appointment` (a new one, or one moved under its own
    uid), or delete it; `done` is what the model is told once it is."""

    appointment: Appointment
    done: str
    delete: bool = False


@dataclass(slots=True)
class _Desk:
    profile: BusinessProfile
    calendar: Calendar
    clock: Clock
    step: int
    write: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held from the last look at a slot to its write: one booking at a time, on every call."""
    planned: dict[tuple[str, str], _Plan | str] = field(default_factory=dict)
    """By (tool, call id): the read-back's plan, or why there is none; the oldest are dropped
    past `_PLANS_KEPT` (a read-back the caller said no to is never run, so never taken out)."""

    def plan_for(self, key: tuple[str, str], plan: _Plan | str) -> None:
        self.planned.pop(key, None)
        self.planned[key] = plan
        while len(self.planned) > _PLANS_KEPT:
            del self.planned[next(iter(self.planned))]

    def now(self) -> dt.datetime:
        return self.profile.local(self.clock.wall())

    def said(self, at: dt.datetime) -> str:
        when = spoken_date(at.astimezone(self.profile.timezone).date(), self.now().date())
        return f"{when} at {spoken_time(_local_time(at, self.profile))}"

    def service(self, asked: str | None) -> Service:
        services = self.profile.services
        if not asked and len(services) == 1:
            return services[0]
        wanted = (asked or "").strip().lower()
        for found in services:
            name = found.name.lower()
            if wanted and (wanted in name or name in wanted):
                return found
        names = ", ".join(s.name for s in services)
        raise _Refused(f"ask the caller which service they want; we offer: {names}")

    def day(self, asked: str) -> dt.date:
        day = self.profile.resolve_day(asked, self.now())
        if day is None:
            raise _Refused(f'"{asked}" is not a day that can be worked out; ask which day')
        if day < self.now().date():
            raise _Refused(f"{spoken_date(day, self.now().date())} has passed; ask for a day ahead")
        return day

    def start(self, day: dt.date, asked: str, minutes: int) -> dt.datetime:
        """The one start the caller's time can mean on `day`, within opening hours."""
        readings = clock_times(asked)
        if not readings:
            raise _Refused(f'"{asked}" is not a time that can be worked out; ask what time')
        hours = self.profile.hours_on(day).ranges
        zone = self.profile.timezone
        fitting = [
            at_local(day, at, zone)
            for at in readings
            if any(
                at_local(day, opens, zone)
                <= at_local(day, at, zone)
                <= at_local(day, closes, zone) - dt.timedelta(minutes=minutes)
                for opens, closes in hours
            )
        ]
        if not fitting:
            hours_said = self.profile.say_hours(day, self.now())
            raise _Refused(
                f"that is outside our hours for a {minutes}-minute service. {hours_said}"
            )
        if len(fitting) > 1:
            hour = spoken_time(readings[0]).split()[0]
            later = "evening" if readings[1].hour >= _EVENING else "afternoon"
            raise _Refused(
                f"ask the caller: {hour} in the morning or in the {later}? (both are open)"
            )
        if fitting[0] < self.now():
            raise _Refused("that time has passed; ask for a later one")
        return fitting[0]

    async def taken(self, day: dt.date) -> list[Appointment]:
        return await self.calendar.between(*day_bounds(day, self.profile.timezone))

    async def free(self, day: dt.date, minutes: int) -> list[dt.datetime]:
        starts = starts_in_hours(
            day,
            self.profile.hours_on(day).ranges,
            self.profile.timezone,
            minutes=minutes,
            step=self.step,
        )
        if not starts:
            return []
        return free_starts(starts, await self.taken(day), minutes=minutes, now=self.now())

    async def is_free(self, start: dt.datetime, end: dt.datetime, *, ignore: str = "") -> bool:
        local_day = start.astimezone(self.profile.timezone).date()
        taken = await self.taken(local_day)
        return not any(a.overlaps(start, end) for a in taken if a.uid != ignore)

    async def own(self, context: ToolContext) -> Appointment:
        """The caller's next appointment, booked from the number this call vouches for."""
        number = context.call.caller
        if not context.call.vouched or not is_phone_number(number):
            raise _Refused(
                "the caller's number cannot be confirmed on this line, so their appointment "
                "cannot be changed by phone here; say the business will confirm it in person"
            )
        now = self.now().astimezone(dt.UTC)
        found = await self.calendar.between(now, now + dt.timedelta(days=_OWN_AHEAD_DAYS))
        theirs = sorted((a for a in found if a.caller == number and a.start >= now), key=_start)
        if not theirs:
            raise _Refused("there is no upcoming appointment booked from the caller's number")
        return theirs[0]

    async def offer(self, day: dt.date, minutes: int) -> str:
        """The free times on `day`, or the next day that has one."""
        free = await self.free(day, minutes)
        if free:
            times = ", ".join(
                spoken_time(_local_time(s, self.profile)) for s in free[:_SAY_AT_MOST]
            )
            more = " and later" if len(free) > _SAY_AT_MOST else ""
            return f"Free on {spoken_date(day, self.now().date())}: {times}{more}."
        if self.profile.hours_on(day).closed:
            said = self.profile.say_hours(day, self.now())
        else:
            said = f"{spoken_date(day, self.now().date())} is fully booked."
        for ahead in range(1, _LOOK_AHEAD_DAYS + 1):
            later = day + dt.timedelta(days=ahead)
            if found := await self.free(later, minutes):
                return f"{said} The next free time is {self.said(found[0])}."
        return f"{said} Nothing is free in the {_LOOK_AHEAD_DAYS} days after it."

    async def must_be_free(self, start: dt.datetime, end: dt.datetime, *, ignore: str = "") -> None:
        """Raises _Refused, offering the day's free times, when [start, end) is taken."""
        if not await self.is_free(start, end, ignore=ignore):
            day = start.astimezone(self.profile.timezone).date()
            minutes = int((end - start).total_seconds() // 60)
            raise _Refused(f"{self.said(start)} is taken. {await self.offer(day, minutes)}")

    async def carry_out(self, plan: _Plan) -> str:
        """Do what was read back, the slot checked again under the lock."""
        chosen = plan.appointment
        async with self.write:
            if plan.delete:
                await self.calendar.delete(chosen.uid)
                return plan.done
            if not await self.is_free(chosen.start, chosen.end, ignore=chosen.uid):
                day = chosen.start.astimezone(self.profile.timezone).date()
                minutes = int((chosen.end - chosen.start).total_seconds() // 60)
                offer = await self.offer(day, minutes)
                return f"Not done: {self.said(chosen.start)} was just taken. {offer}"
            await self.calendar.save(chosen)
            return plan.done


def _start(appointment: Appointment) -> dt.datetime:
    return appointment.start


def _local_time(at: dt.datetime, profile: BusinessProfile) -> dt.time:
    return at.astimezone(profile.timezone).time().replace(tzinfo=None)


def _a(name: str) -> str:
    lowered = name.lower()
    return f"{'an' if lowered[:1] in 'aeiou' else 'a'} {lowered}"


def _minutes(service: Service) -> int:
    return service.minutes or DEFAULT_MINUTES


def booking_tools(
    profile: BusinessProfile, calendar: Calendar, *, clock: Clock, step_minutes: int = 30
) -> list[Tool]:
    """find_free_times, book_appointment, move_appointment and cancel_appointment on one
    calendar; one lock between them, shared by every call."""
    desk = _Desk(profile, calendar, clock, step_minutes)
    return [
        _finder(desk),
        _confirmed(
            desk,
            "book_appointment",
            "Book the caller an appointment for a service at a day and time they chose. The "
            "caller is asked to confirm; nothing is booked before their yes.",
            _BookArgs,
            _book,
        ),
        _confirmed(
            desk,
            "move_appointment",
            "Move the caller's own next appointment to another day and time (confirmed first).",
            _MoveArgs,
            _move,
        ),
        _confirmed(
            desk,
            "cancel_appointment",
            "Cancel the caller's own next appointment (confirmed first).",
            _NoArgs,
            _cancel,
        ),
    ]


_Planner = Callable[[_Desk, BaseModel, ToolContext], Awaitable[tuple[_Plan, str]]]


def _confirmed(
    desk: _Desk, name: str, description: str, arguments: type[BaseModel], plan: _Planner
) -> Tool:
    """A tool that reads back its plan and, on the caller's yes, carries out that plan."""

    async def readback(args: BaseModel, context: ToolContext) -> str | None:
        key = (name, context.call.call_id)
        try:
            planned, sentence = await plan(desk, args, context)
        except (_Refused, CalendarUnavailable) as exc:
            desk.plan_for(key, f"Not done: {exc}.")
            return None  # nothing would happen: the tool runs at once and says why
        desk.plan_for(key, planned)
        return sentence

    async def run(_: BaseModel, context: ToolContext) -> str:
        planned = desk.planned.pop((name, context.call.call_id), None)
        if planned is None:
            return "Not done: nothing was read back to the caller; call the tool again."
        if isinstance(planned, str):
            return planned
        try:
            return await desk.carry_out(planned)
        except CalendarUnavailable as exc:
            return f"Not done: {exc}."

    return Tool(name, description, arguments, run, readback=readback)


def _finder(desk: _Desk) -> Tool:
    async def run(args: BaseModel, _: ToolContext) -> str:
        assert isinstance(args, _FindArgs)
        try:
            return await desk.offer(desk.day(args.day), _minutes(desk.service(args.service)))
        except (_Refused, CalendarUnavailable) as exc:
            return f"Not found: {exc}."

    return Tool(
        "find_free_times",
        "The free appointment times for a service on a day (business hours and bookings are "
        "checked here). Use it before offering or booking a time.",
        _FindArgs,
        run,
    )


async def _book(desk: _Desk, args: BaseModel, context: ToolContext) -> tuple[_Plan, str]:
    assert isinstance(args, _BookArgs)
    service = desk.service(args.service)
    minutes = _minutes(service)
    start = desk.start(desk.day(args.day), args.time, minutes)
    end = start + dt.timedelta(minutes=minutes)
    await desk.must_be_free(start, end)
    number = context.call.caller if is_phone_number(context.call.caller) else ""
    booked = Appointment(f"{uuid.uuid4()}@tel3sis", start, end, service.name, number)
    what = f"{desk.said(start)} for {_a(service.name)}"
    return _Plan(booked, f"Booked: {what}."), f"That's {what}. Shall I book it?"


async def _move(desk: _Desk, args: BaseModel, context: ToolContext) -> tuple[_Plan, str]:
    assert isinstance(args, _MoveArgs)
    own = await desk.own(context)
    length = own.end - own.start
    start = desk.start(desk.day(args.day), args.time, int(length.total_seconds() // 60))
    if start == own.start:
        raise _Refused(f"the appointment is already at {desk.said(start)}")
    await desk.must_be_free(start, start + length, ignore=own.uid)
    moved = replace(own, start=start, end=start + length)
    what = f"your {own.service.lower() or 'appointment'}"
    sentence = f"I'll move {what} from {desk.said(own.start)} to {desk.said(start)}. Shall I?"
    return _Plan(moved, f"Moved: {what} is now {desk.said(start)}."), sentence


async def _cancel(desk: _Desk, _: BaseModel, context: ToolContext) -> tuple[_Plan, str]:
    own = await desk.own(context)
    what = f"your {own.service.lower() or 'appointment'} on {desk.said(own.start)}"
    return _Plan(own, f"Cancelled: {what}.", delete=True), f"I'll cancel {what}. Shall I?"
