"""A `Calendar` on a CalDAV server (Nextcloud, Radicale, Fastmail, iCloud), over `caldav`.

`caldav` is synchronous (requests underneath): every call runs on a worker thread
(`asyncio.to_thread`), one at a time (the client's session is not made for two threads at once),
with the client's own socket timeout bounding how long a thread can hang. Nothing is read at
construction: the server is first asked when a tool needs it, so a box whose calendar is down
still starts, and its tools say so.

Events the tools make carry the service (`SUMMARY`, and `X-TEL3SIS-SERVICE`) and the caller's
number (`X-TEL3SIS-CALLER`, and in `DESCRIPTION` for whoever reads the calendar), in UTC.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import caldav
import requests
from caldav.lib import error

from appliance.bookings.calendar import Appointment, CalendarUnavailable

__all__ = ["CalDavCalendar"]

T = TypeVar("T")

_CALLER = "X-TEL3SIS-CALLER"
_SERVICE = "X-TEL3SIS-SERVICE"


class CalDavCalendar:
    """One calendar of one CalDAV account; `calendar` is its display name or URL path, or None
    for the account's first calendar."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        calendar: str | None = None,
        timeout_s: int = 5,
    ) -> None:
        self._client = caldav.DAVClient(
            url, username=username, password=password, timeout=timeout_s
        )
        self._wanted = calendar
        self._calendar: Any = None
        self._lock = threading.Lock()

    async def between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        def read() -> list[Appointment]:
            found = self._found().search(start=start, end=end, event=True, expand=True)
            return [a for a in map(_appointment, found) if a is not None and a.overlaps(start, end)]

        return await self._off_loop(read)

    async def save(self, appointment: Appointment) -> None:
        await self._off_loop(lambda: self._found().save_event(_ics(appointment)))

    async def delete(self, uid: str) -> None:
        await self._off_loop(lambda: self._found().event_by_uid(uid).delete())

    async def _off_loop(self, work: Callable[[], T]) -> T:
        def guarded() -> T:
            with self._lock:
                try:
                    return work()
                except error.AuthorizationError as exc:
                    raise CalendarUnavailable(
                        "the calendar refused our login; bookings cannot be made on this call"
                    ) from exc
                except (requests.ConnectionError, requests.Timeout) as exc:
                    raise CalendarUnavailable(
                        "the calendar cannot be reached right now; bookings cannot be made on "
                        "this call"
                    ) from exc
                except error.DAVError as exc:
                    raise CalendarUnavailable(
                        f"the calendar answered with an error ({type(exc).__name__}); bookings "
                        "cannot be made on this call"
                    ) from exc

        return await asyncio.to_thread(guarded)

    def _found(self) -> Any:
        """The calendar, looked up on first use (on the worker thread)."""
        if self._calendar is None:
            # caldav 2.0 leaves `principal` unannotated.
            calendars = self._client.principal().calendars()  # type: ignore[no-untyped-call]
            wanted = self._wanted
            matches = [
                c
                for c in calendars
                if wanted is None
                or wanted in (c.name, str(c.url.path).strip("/"), str(c.url))
                or str(c.url.path).rstrip("/").endswith("/" + wanted.strip("/"))
            ]
            if not matches:
                raise error.NotFoundError(f"no calendar named {wanted!r}")
            self._calendar = matches[0]
        return self._calendar


def _instant(value: dt.date | dt.datetime) -> dt.datetime:
    """An event's DTSTART/DTEND as an instant; a floating time is taken as UTC, a date as the
    start of that day in UTC (so an all-day event blocks the whole day, give or take a zone)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _appointment(found: Any) -> Appointment | None:
    """One event as an Appointment; None for one that takes no time (transparent, cancelled)."""
    event = found.icalendar_component
    if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
        return None
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    start = _instant(event["DTSTART"].dt)
    if "DTEND" in event:
        end = _instant(event["DTEND"].dt)
    elif "DURATION" in event:
        end = start + event["DURATION"].dt
    else:
        all_day = not isinstance(event["DTSTART"].dt, dt.datetime)
        end = start + dt.timedelta(days=1 if all_day else 0)
    return Appointment(
        uid=str(event.get("UID", "")),
        start=start,
        end=end,
        service=str(event.get(_SERVICE, "")),
        caller=str(event.get(_CALLER, "")),
    )


def _text(value: str) -> str:
    """An iCalendar TEXT value (RFC 5545 section 3.3.11)."""
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _ics(appointment: Appointment) -> str:
    caller = appointment.caller or "withheld"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//TEL3SIS//bookings//EN",
        "BEGIN:VEVENT",
        f"UID:{appointment.uid}",
        f"DTSTAMP:{_utc(dt.datetime.now(dt.UTC))}",
        f"DTSTART:{_utc(appointment.start)}",
        f"DTEND:{_utc(appointment.end)}",
        f"SUMMARY:{_text(appointment.service)}",
        f"DESCRIPTION:{_text(f'Booked by phone from {caller}.')}",
        f"{_SERVICE}:{_text(appointment.service)}",
        f"{_CALLER}:{_text(appointment.caller)}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"
