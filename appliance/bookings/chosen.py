"""The calendar the box books on: Google Calendar while it is connected, else CalDAV.

The operator connects Google from the status page while the box runs, and may disconnect it
again; the tools were built once at start (their list is part of every prompt), so the choice is
made on each use instead: one read of the sealed tokens' row, nothing over the network.
"""

from __future__ import annotations

import datetime as dt

from appliance.bookings.calendar import Appointment, Calendar
from appliance.bookings.google import GoogleCalendar
from appliance.bookings.oauth import GoogleAuth, GoogleNotConnected

__all__ = ["GoogleOrCalDav"]


class GoogleOrCalDav:
    """Google while `auth` holds tokens; otherwise `caldav`, or none (the tools say so)."""

    def __init__(self, google: GoogleCalendar, auth: GoogleAuth, caldav: Calendar | None) -> None:
        self._google = google
        self._auth = auth
        self._caldav = caldav

    async def _chosen(self) -> Calendar:
        if await self._auth.has_login():  # tokens that cannot be opened: said, not skipped
            return self._google
        if self._caldav is not None:
            return self._caldav
        raise GoogleNotConnected(
            "no calendar is connected (the operator connects Google Calendar from the status "
            "page); bookings cannot be made on this call"
        )

    async def between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        return await (await self._chosen()).between(start, end)

    async def save(self, appointment: Appointment) -> None:
        await (await self._chosen()).save(appointment)

    async def delete(self, uid: str) -> None:
        await (await self._chosen()).delete(uid)
