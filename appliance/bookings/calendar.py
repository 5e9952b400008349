"""The calendar port: what the booking tools need of a calendar, and nothing of CalDAV."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Appointment", "Calendar", "CalendarUnavailable"]


class CalendarUnavailable(Exception):
    """The calendar cannot be read or written now; the message is written for the model."""


@dataclass(frozen=True, slots=True)
class Appointment:
    """An event in the calendar; ours carry the service and the caller's number."""

    uid: str
    start: dt.datetime
    """Aware."""
    end: dt.datetime
    """Aware."""
    service: str = ""
    """Empty for an event the booking tools did not make (it still takes the time)."""
    caller: str = ""
    """The number the appointment was booked from; empty when withheld or not ours."""

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start < end and start < self.end


class Calendar(Protocol):
    async def between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        """Every event that overlaps [start, end); raises CalendarUnavailable."""
        ...

    async def save(self, appointment: Appointment) -> None:
        """Add it, or replace the event with its uid; raises CalendarUnavailable."""
        ...

    async def delete(self, uid: str) -> None:
        """Remove the event with `uid`; raises CalendarUnavailable."""
        ...
