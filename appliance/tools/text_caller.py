"""Texting the caller, read back before anything is sent: the business's address or phone number,
their own upcoming appointment, or this call's transcript or summary once the call has ended.

What is texted is written here, from the business profile, the calendar or the call's record,
never by the model, and goes only to the number the caller is calling from: the model chooses
what, never where or what it says. A text costs money and cannot be unsent, so the tool has a
read-back ("I'll text our address to the number you're calling from, ending in 0 1 2 3. Shall
I send it?") and runs only on the caller's yes in their next turn (`think.py`). Every choice is
one tool, so every text counts under the same limits (`ToolPolicy`: two a call, three a caller
a day).

Why one tool and not a confirmation offered by `book_appointment`: a caller asks for the text
when they want it (after booking, or calling back about an appointment booked last week), the
booking tools stay about the calendar, and the texting rules (own number, read-back, limits)
live in one place.

- "my appointment": the caller's upcoming appointments booked from their number, read from the
  calendar when the text is sent (the same rule as moving or cancelling one: only on a line that
  vouches for the number; a caller ID alone is not an identity).
- "the transcript" / "a summary": nothing is sent during the call. The tool's run is recorded
  on the call (`actions`), and when the call ends its post-call jobs include `caller_text`
  (`appliance.memory.postcall`), which texts the whole transcript or the truthful summary to
  the caller's number. Only on a line that vouches for the number: a stranger spoofing a
  number must not get the business to text their words to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, Field, create_model

from appliance.clock import Clock
from appliance.conversation.days import spoken_date, spoken_time
from appliance.conversation.ports import Texter
from appliance.conversation.profile import BusinessProfile, is_phone_number
from appliance.conversation.tools import Tool, ToolContext

__all__ = ["AFTER_CALL", "TEXT_TOOL", "Booking", "Bookings", "text_the_caller"]

TEXT_TOOL: Final = "text_the_caller"
AFTER_CALL: Final = ("the transcript", "a summary")
"""The choices texted by the post-call `caller_text` job, which finds them in the call's record
by these words (`appliance.memory.postcall` names them again: memory cannot import tools)."""
_APPOINTMENT: Final = "my appointment"
_FACTS: Final = ("address", "phone number")
_AHEAD_DAYS = 366
_TEXT_AT_MOST = 3
"""Appointments in one confirmation text (the next ones)."""
_AFTER_IT: Final = ("", " and the one after it", " and the two after it")
"""What the read-back adds for the appointments after the first (up to `_TEXT_AT_MOST`)."""


class Booking(Protocol):
    """An event in the calendar (`appliance.bookings.Appointment` is one)."""

    @property
    def start(self) -> dt.datetime: ...
    @property
    def service(self) -> str: ...
    @property
    def caller(self) -> str: ...


class Bookings(Protocol):
    """The booking tools' calendar, read only (`appliance.bookings.Calendar` is one)."""

    async def between(self, start: dt.datetime, end: dt.datetime) -> Sequence[Booking]:
        """Every event that overlaps [start, end); raises with a message for the model."""
        ...


class _Refused(Exception):
    """Nothing is texted; the message says why, for the model."""


def _arguments(choices: Sequence[str]) -> type[BaseModel]:
    """The tool's arguments: `what`, one of the choices this box can text (the schema the model
    fills lists only those)."""
    # A Literal of values known only at start: a type to pydantic, not to mypy.
    one_of: Any = Literal[tuple(choices)]
    listed = ", ".join(f'"{choice}"' for choice in choices)
    described = Field(description=f"What to text the caller: {listed}")
    return create_model("TextWhat", what=(one_of, described))


def _ending(number: str) -> str:
    return " ".join(number[-4:])


class _Texts:
    """What each choice texts, and what the caller hears before it is sent."""

    def __init__(self, profile: BusinessProfile, clock: Clock, bookings: Bookings | None) -> None:
        self.profile = profile
        self._clock = clock
        self._bookings = bookings
        self.facts = {
            kind: value
            for kind, value in zip(_FACTS, (profile.address, profile.phone), strict=True)
            if value
        }

    def _now(self) -> dt.datetime:
        return self.profile.local(self._clock.wall())

    async def upcoming(self, context: ToolContext) -> list[Booking]:
        """The caller's next appointments, booked from the number this call vouches for."""
        assert self._bookings is not None
        number = context.call.caller
        if not context.call.vouched:
            raise _Refused(
                "the caller's number cannot be confirmed on this line, so their appointment "
                "cannot be texted; say the business will confirm it"
            )
        now = self._now().astimezone(dt.UTC)
        found = await self._bookings.between(now, now + dt.timedelta(days=_AHEAD_DAYS))
        theirs = sorted((b for b in found if b.caller == number and b.start >= now), key=_start)
        if not theirs:
            raise _Refused("there is no upcoming appointment booked from the caller's number")
        return theirs[:_TEXT_AT_MOST]

    def said(self, booking: Booking) -> str:
        """How the read-back names an appointment: "your haircut on Wednesday the 9th at 3 PM"."""
        at = self.profile.local(booking.start)
        when = f"{spoken_date(at.date(), self._now().date())} at {spoken_time(_time(at))}"
        return f"your {booking.service.lower() or 'appointment'} on {when}"

    def written(self, booking: Booking) -> str:
        """How the text names it: "Haircut, Wednesday 9 December 2026 at 3 PM"."""
        at = self.profile.local(booking.start)
        when = f"{at:%A} {at.day} {at:%B %Y} at {spoken_time(_time(at))}"
        return f"{booking.service or 'Appointment'}, {when}"

    def confirmation(self, bookings: Sequence[Booking]) -> str:
        """The text confirming the caller's appointments, as the calendar has them."""
        which = "appointment" if len(bookings) == 1 else "appointments"
        lines = [f"{self.profile.name}: your {which}", *(self.written(b) for b in bookings)]
        if self.profile.address:
            lines.append(self.profile.address)
        return "\n".join(lines)


def _start(booking: Booking) -> dt.datetime:
    return booking.start


def _time(at: dt.datetime) -> dt.time:
    return at.time().replace(tzinfo=None)


def _refusal(what: str, context: ToolContext, texts: _Texts) -> str | None:
    """Why nothing can be texted for `what` on this call (checked before any lookup)."""
    if what in _FACTS and what not in texts.facts:
        return f"the business has no {what} to give"
    if not is_phone_number(context.call.caller):
        return "the caller's number is withheld, so there is nowhere to text it"
    if what in AFTER_CALL and not context.call.vouched:
        return (
            "the caller's number cannot be confirmed on this line, so nothing about the call "
            "is texted to it"
        )
    return None


def text_the_caller(
    profile: BusinessProfile,
    texter: Texter,
    *,
    clock: Clock,
    bookings: Bookings | None = None,
    after_call: bool = False,
) -> Tool | None:
    """The tool, or None when there is nothing it could text. "my appointment" is offered with
    `bookings` (the booking tools' calendar); "the transcript" and "a summary" with
    `after_call` (the post-call jobs run beside this front desk and can text)."""
    texts = _Texts(profile, clock, bookings)
    choices = [*texts.facts]
    if bookings is not None:
        choices.append(_APPOINTMENT)
    if after_call:
        choices += AFTER_CALL
    if not choices:
        return None

    async def readback(arguments: BaseModel, context: ToolContext) -> str | None:
        what = str(getattr(arguments, "what", ""))
        if _refusal(what, context, texts) is not None:
            return None  # nothing would be sent: no read-back, the tool says why
        to = f"the number you're calling from, ending in {_ending(context.call.caller)}"
        if what in AFTER_CALL:
            return f"I'll text {what} of this call to {to}, once we hang up. Shall I?"
        if what == _APPOINTMENT:
            try:
                found = await texts.upcoming(context)
            except Exception:  # the calendar's own errors reach the model through the run
                return None
            details = texts.said(found[0]) + _AFTER_IT[len(found) - 1]
            return f"I'll text the details of {details} to {to}. Shall I send it?"
        return f"I'll text our {what} to {to}. Shall I send it?"

    async def run(arguments: BaseModel, context: ToolContext) -> str:
        what = str(getattr(arguments, "what", ""))
        why = _refusal(what, context, texts)
        if why is not None:
            return f"Not sent: {why}."
        number = context.call.caller
        if what in AFTER_CALL:
            return (
                f"Not sent yet: {what} of this call will be texted to the caller's number, "
                f"ending in {_ending(number)}, after the call ends; nothing is sent during it."
            )
        if what == _APPOINTMENT:
            try:
                found = await texts.upcoming(context)
            except _Refused as exc:
                return f"Not sent: {exc}."
            sent = await texter.send_sms(number, texts.confirmation(found))
            return f"Sent: the caller's appointment details were texted to them ({sent})."
        sent = await texter.send_sms(number, f"{profile.name}: {texts.facts[what]}")
        return f"Sent: our {what} was texted to the caller ({sent})."

    return Tool(
        name=TEXT_TOOL,
        description="Text the caller, at the number they are calling from, when they ask for "
        "something by text message: " + ", ".join(choices) + ". The caller is asked to "
        "confirm; nothing is sent before their yes.",
        arguments=_arguments(choices),
        run=run,
        readback=readback,
    )
