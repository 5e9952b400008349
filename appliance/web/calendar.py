"""The calendar page: connect Google Calendar by the device flow, or disconnect it.

The box has no browser, so the operator is shown a code and Google's address to enter it at
(on a phone or laptop); the page reloads itself every few seconds while the box polls Google,
and shows the outcome. Disconnecting revokes the grant at Google. One flow at a time: starting
another ends the one before. Behind the login; every form carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from appliance.bookings import DeviceCode, GoogleAuth, GoogleNotConnected
from appliance.bookings.oauth import Outcome
from appliance.web.auth import Auth
from appliance.web.health import Health
from appliance.web.pages import Pages
from appliance.web.sessions import Session

__all__ = ["CalendarHealth", "CalendarPage", "CalendarView", "calendar_router"]

_log = logging.getLogger(__name__)

State = Outcome | Literal["failed", "disconnected"]


@dataclass(slots=True)
class _Flow:
    code: DeviceCode | None
    state: State
    error: str = ""
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class CalendarView:
    """What the page shows."""

    configured: bool
    """GOOGLE_CLIENT_ID is set."""
    caldav: bool
    """CALDAV_URL is set (bookings go there while Google is not connected)."""
    connected: bool
    state: str
    """The last flow's: pending, connected, denied, expired, failed, disconnected; or ""."""
    user_code: str = ""
    verification_url: str = ""
    error: str = ""
    problem: str = ""
    """Why the stored login cannot be used (a key that does not open it)."""


@dataclass
class CalendarPage:
    auth: Auth
    pages: Pages
    google: GoogleAuth | None
    caldav: bool
    _flow: _Flow | None = field(default=None, init=False)

    async def view(self) -> CalendarView:
        connected, problem = await _login(self.google)
        flow = self._flow
        if flow is None:
            return CalendarView(
                self.google is not None, self.caldav, connected, "", problem=problem
            )
        code = flow.code if flow.state == "pending" else None
        return CalendarView(
            configured=True,
            caldav=self.caldav,
            connected=connected,
            state=flow.state,
            user_code=code.user_code if code else "",
            verification_url=code.verification_url if code else "",
            error=flow.error,
            problem=problem,
        )

    async def connect(self) -> None:
        assert self.google is not None
        await self._end_flow()
        try:
            code = await self.google.start()
        except Exception as exc:  # shown to the operator: it says what Google refused
            self._flow = _Flow(None, "failed", str(exc))
            return
        flow = _Flow(code, "pending")
        flow.task = asyncio.create_task(self._wait(flow), name="google-device-flow")
        self._flow = flow

    async def _wait(self, flow: _Flow) -> None:
        assert self.google is not None and flow.code is not None
        try:
            flow.state = await self.google.wait(flow.code)
        except Exception as exc:  # no key, Google unreachable: the page says which
            _log.warning("google: connecting the calendar failed: %s", exc)
            flow.state, flow.error = "failed", str(exc)

    async def disconnect(self) -> None:
        assert self.google is not None
        await self._end_flow()
        revoked = await self.google.disconnect()
        error = "" if revoked else "Google could not confirm the revoke; the login is forgotten"
        self._flow = _Flow(None, "disconnected", error)

    async def _end_flow(self) -> None:
        flow, self._flow = self._flow, None
        if flow is not None and flow.task is not None and not flow.task.done():
            flow.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flow.task


async def _login(google: GoogleAuth | None) -> tuple[bool, str]:
    """Whether Google is connected, and why its stored login cannot be used (or "")."""
    if google is None:
        return False, ""
    try:
        return await google.has_login(), ""
    except GoogleNotConnected as exc:
        return False, str(exc)


@dataclass(frozen=True, slots=True)
class CalendarHealth:
    """The booking calendar, on the status page: Google connected or not, or CalDAV."""

    google: GoogleAuth | None
    caldav: bool
    part: str = "calendar"

    async def health(self) -> Health:
        caldav = "bookings go to the CalDAV calendar" if self.caldav else "no bookings can be made"
        if self.google is None:
            if self.caldav:
                return Health(self.part, "ok", "CalDAV (CALDAV_URL)")
            return Health(self.part, "off", "not configured")
        connected, problem = await _login(self.google)
        if problem:
            return Health(self.part, "fail", problem)
        if connected:
            return Health(self.part, "ok", "Google Calendar connected")
        summary = f"Google Calendar not connected: {caldav}"
        return Health(self.part, "ok" if self.caldav else "warn", summary)


def _stale() -> Response:
    return PlainTextResponse(
        "Forbidden: the form's security token is missing or stale. Reload the page and try again.",
        403,
    )


def calendar_router(deps: CalendarPage) -> APIRouter:
    """`/calendar` and its forms, and `/api/calendar`, behind the login."""
    router = APIRouter()
    signed_in = Depends(deps.auth.page)
    signed_in_api = Depends(deps.auth.api)

    @router.get("/calendar")
    async def calendar(session: Session = signed_in) -> Response:
        view = await deps.view()
        return deps.pages.render("calendar.html", session=session, nav="calendar", view=view)

    @router.get("/api/calendar")
    async def calendar_json(session: Session = signed_in_api) -> Response:
        view = await deps.view()
        return JSONResponse(
            {
                "configured": view.configured,
                "connected": view.connected,
                "state": view.state,
                "user_code": view.user_code,
                "verification_url": view.verification_url,
                "error": view.error,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def act(request: Request, session: Session, action: str) -> Response:
        if await deps.auth.form(request, session) is None:
            return _stale()
        if deps.google is None:
            return PlainTextResponse("Google Calendar is not set up (GOOGLE_CLIENT_ID)", 404)
        await (deps.connect() if action == "connect" else deps.disconnect())
        return RedirectResponse("/calendar", status_code=303)

    @router.post("/calendar/google/connect")
    async def connect(request: Request, session: Session = signed_in) -> Response:
        return await act(request, session, "connect")

    @router.post("/calendar/google/disconnect")
    async def disconnect(request: Request, session: Session = signed_in) -> Response:
        return await act(request, session, "disconnect")

    return router
