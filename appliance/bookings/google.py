"""A `Calendar` on Google Calendar (API v3, `events` list, insert, patch, delete), over httpx.

Every request carries the account's access token (`GoogleAuth`): a 401 gets one refresh and one
retry; a 429 (or Google's 403 `rateLimitExceeded`) and a 503 are waited out, as long as Google's
`Retry-After` says (else 1 s, 2 s), at most three tries and 5 s in all (a caller is on the
line), then the tools say the calendar is busy.

An appointment's uid is not a valid Google event id (ids are base32hex), so the event id is a
digest of it; the uid, the service and the caller's number ride in the event's private extended
properties. The id being the appointment's own makes a write idempotent: an insert that meets
409 (a moved appointment, or a retried insert that had gone through) becomes a patch.
Recurring events are asked for expanded (`singleEvents`), so each occurrence takes its own
time; a transparent ("free") or cancelled event takes none.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from appliance.bookings.calendar import Appointment, CalendarUnavailable
from appliance.bookings.oauth import GoogleAuth
from appliance.clock import Clock

__all__ = ["GoogleCalendar", "event_id"]

_BASE32HEX = re.compile(r"[a-v0-9]{5,1024}")
_TRIES = 3
_MAX_WAIT_S = 5.0
"""The most one request waits out rate limits, in all: past it, the calendar is said to be busy
(a caller is on the line)."""
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_PAGE = 250


def event_id(uid: str) -> str:
    """The Google event id an appointment's uid is stored under (a Google id stays itself)."""
    if _BASE32HEX.fullmatch(uid):
        return uid
    return hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()


class GoogleCalendar:
    """One calendar (`calendar_id`: "primary", or a calendar's address) of the account that
    `auth` holds the tokens of."""

    def __init__(
        self,
        auth: GoogleAuth,
        *,
        clock: Clock,
        calendar_id: str = "primary",
        base_url: str = "https://www.googleapis.com/calendar/v3",
        timeout_s: float = 10.0,
    ) -> None:
        self._auth = auth
        self._clock = clock
        self._events = f"{base_url.rstrip('/')}/calendars/{quote(calendar_id, safe='')}/events"
        self._timeout = timeout_s

    async def between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        query: dict[str, str] = {
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
            "singleEvents": "true",
            "orderBy": "startTime",
            "maxResults": str(_PAGE),
        }
        found: list[Appointment] = []
        while True:
            page = await self._send("GET", self._events, params=query)
            zone = _zone(page.get("timeZone"))
            items = (_appointment(item, zone) for item in page.get("items", []))
            found += [a for a in items if a is not None]
            if not page.get("nextPageToken"):
                return [a for a in found if a.overlaps(start, end)]
            query["pageToken"] = str(page["nextPageToken"])

    async def save(self, appointment: Appointment) -> None:
        body = _event(appointment)
        url = f"{self._events}/{event_id(appointment.uid)}"
        try:
            await self._send("POST", self._events, json=body)
        except _Duplicate:  # an appointment moved: the event is there already
            body.pop("id")
            await self._send("PATCH", url, json=body)

    async def delete(self, uid: str) -> None:
        with contextlib.suppress(_Gone):  # deleted already: what was asked is so
            await self._send("DELETE", f"{self._events}/{event_id(uid)}")

    async def _send(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """One request, with the token; one refresh on 401, back-off on rate limits."""
        refreshed, waited = False, 0.0
        for attempt in range(1, _TRIES + 1):
            token = await self._auth.token()
            response = await self._http(method, url, token, **kwargs)
            if response.status_code == httpx.codes.UNAUTHORIZED and not refreshed:
                refreshed = True
                token = await self._auth.token(refresh=True)
                response = await self._http(method, url, token, **kwargs)
            wait = _wait_s(response, attempt)
            if wait is None:
                return _answer(response)
            if attempt < _TRIES and waited + wait <= _MAX_WAIT_S:
                await self._clock.sleep(wait)
                waited += wait
                continue
            break
        raise CalendarUnavailable(
            "the calendar is busy right now (Google asked us to slow down); bookings cannot be "
            "made on this call"
        )

    async def _http(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            return await self._auth.http().request(
                method, url, headers=headers, timeout=self._timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise CalendarUnavailable(
                "the calendar cannot be reached right now; bookings cannot be made on this call"
            ) from exc


class _Duplicate(CalendarUnavailable):
    """409: an event with that id exists."""


class _Gone(CalendarUnavailable):
    """404 or 410: no such event (any more)."""


def _reason(response: httpx.Response) -> str:
    try:
        errors = response.json()["error"].get("errors") or [{}]
        return str(errors[0].get("reason", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _wait_s(response: httpx.Response, attempt: int) -> float | None:
    """How long to wait before trying again; None when the answer is final."""
    limited = response.status_code == httpx.codes.TOO_MANY_REQUESTS or (
        response.status_code == httpx.codes.FORBIDDEN and _reason(response) in _RATE_REASONS
    )
    if not limited and response.status_code != httpx.codes.SERVICE_UNAVAILABLE:
        return None
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return float(2 ** (attempt - 1))


def _answer(response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status == httpx.codes.NO_CONTENT:
        return {}
    if status == httpx.codes.CONFLICT:
        raise _Duplicate("the event exists already")
    if status in (httpx.codes.NOT_FOUND, httpx.codes.GONE):
        raise _Gone("no such event")
    if status == httpx.codes.UNAUTHORIZED:
        raise CalendarUnavailable(
            "Google refused the calendar login; bookings cannot be made on this call"
        )
    if status >= httpx.codes.BAD_REQUEST:
        raise CalendarUnavailable(
            f"the calendar answered with an error ({status} {_reason(response) or 'error'}); "
            "bookings cannot be made on this call"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise CalendarUnavailable("the calendar answered with something unreadable") from exc
    if not isinstance(body, dict):
        raise CalendarUnavailable("the calendar answered with something unreadable")
    return body


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _zone(name: object) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant(when: dict[str, Any], zone: ZoneInfo) -> dt.datetime:
    """An event's start or end: a dateTime, or an all-day date at midnight in the calendar's
    zone."""
    if "dateTime" in when:
        return dt.datetime.fromisoformat(str(when["dateTime"])).astimezone(dt.UTC)
    day = dt.date.fromisoformat(str(when["date"]))
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


def _appointment(item: dict[str, Any], zone: ZoneInfo) -> Appointment | None:
    if item.get("status") == "cancelled" or item.get("transparency") == "transparent":
        return None
    mine = item.get("extendedProperties", {}).get("private", {})
    return Appointment(
        uid=str(mine.get("tel3sisUid") or item["id"]),
        start=_instant(item["start"], zone),
        end=_instant(item["end"], zone),
        service=str(mine.get("service", "")),
        caller=str(mine.get("caller", "")),
    )


def _event(appointment: Appointment) -> dict[str, Any]:
    caller = appointment.caller or "withheld"
    return {
        "id": event_id(appointment.uid),
        "summary": appointment.service,
        "description": f"Booked by phone from {caller}.",
        "start": {"dateTime": _rfc3339(appointment.start)},
        "end": {"dateTime": _rfc3339(appointment.end)},
        "extendedProperties": {
            "private": {
                "tel3sisUid": appointment.uid,
                "service": appointment.service,
                "caller": appointment.caller,
            }
        },
    }
