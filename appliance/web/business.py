"""The business page: what the front desk knows and may do, as every call will use it.

The business profile (`BUSINESS_FILE`) with its opening hours worked out in code, in the
business's time zone, for the coming week (the same `hours_on` and `say_now` the agent answers
from); the tools the model may call; and the system prompt every call starts from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Final

from fastapi import APIRouter, Depends, Response

from appliance.clock import Clock
from appliance.conversation.days import spoken_ranges
from appliance.conversation.profile import FAQ_IN_PROMPT_MAX, BusinessProfile, DayHours
from appliance.conversation.tools import Tool
from appliance.web.auth import Auth
from appliance.web.pages import Pages
from appliance.web.sessions import Session

__all__ = ["BusinessPage", "BusinessView", "DeskFacts", "business_router", "business_view"]

_WEEK_DAYS: Final = 7
_LEAP_WAIT_YEARS: Final = 8
"""How far ahead a yearly February 29th is looked for (two leap years, at most)."""


@dataclass(frozen=True, slots=True)
class DeskFacts:
    """What the front desk was built with at start."""

    business_name: str
    """The profile's name, else `BUSINESS_NAME`."""
    profile: BusinessProfile | None
    tools: tuple[Tool, ...]
    system_prompt: str


@dataclass(frozen=True, slots=True)
class Day:
    """One date's opening hours, as the page lists them."""

    date: dt.date
    today: bool
    hours: str
    """As the agent says them ("from 8 AM to noon"), or "closed"."""
    holiday: str | None


@dataclass(frozen=True, slots=True)
class BusinessView:
    """Everything the business page shows, worked out at one moment."""

    name: str
    profile: BusinessProfile | None
    now: dt.datetime | None
    """The business's local time (None without a profile)."""
    open_now: bool
    now_said: str
    """`say_now`: whether the doors are open and until or from when."""
    week: tuple[Day, ...]
    upcoming: tuple[Day, ...]
    """The exceptions (holidays, special hours), each at its next date from today."""
    faq_recalled: bool
    """True when the FAQ is too long for the prompt and is recalled per turn instead."""
    faq_in_prompt_max: int
    tools: tuple[Tool, ...]
    system_prompt: str


def _day(hours: DayHours, today: dt.date) -> Day:
    said = spoken_ranges(hours.ranges) if hours.ranges else "closed"
    return Day(hours.day, hours.day == today, said, hours.holiday)


def _next_date(date: dt.date | tuple[int, int], today: dt.date) -> dt.date | None:
    """An exception's next date on or after `today`; None for a one-off that has passed."""
    if isinstance(date, dt.date):
        return date if date >= today else None
    month, day = date
    for year in range(today.year, today.year + _LEAP_WAIT_YEARS):
        try:
            found = dt.date(year, month, day)
        except ValueError:  # February 29th outside a leap year
            continue
        if found >= today:
            return found
    return None


def _upcoming(profile: BusinessProfile, today: dt.date) -> tuple[Day, ...]:
    dates = (_next_date(special.date, today) for special in profile.exceptions)
    # hours_on, not the exception itself: a dated entry overrides a yearly one on its day.
    found = sorted({date for date in dates if date is not None})
    return tuple(_day(profile.hours_on(date), today) for date in found)


def business_view(facts: DeskFacts, now: float) -> BusinessView:
    """The page's content at `now` (Unix seconds)."""
    profile = facts.profile
    view = BusinessView(
        name=facts.business_name,
        profile=profile,
        now=None,
        open_now=False,
        now_said="",
        week=(),
        upcoming=(),
        faq_recalled=False,
        faq_in_prompt_max=FAQ_IN_PROMPT_MAX,
        tools=facts.tools,
        system_prompt=facts.system_prompt,
    )
    if profile is None:
        return view
    local = profile.local(now)
    today = local.date()
    days = (today + dt.timedelta(days=offset) for offset in range(_WEEK_DAYS))
    return replace(
        view,
        now=local,
        open_now=profile.is_open(local),
        now_said=profile.say_now(local),
        week=tuple(_day(profile.hours_on(day), today) for day in days),
        upcoming=_upcoming(profile, today),
        faq_recalled=len(profile.faq) > FAQ_IN_PROMPT_MAX,
    )


@dataclass(frozen=True, slots=True)
class BusinessPage:
    """What the business page reads."""

    auth: Auth
    pages: Pages
    clock: Clock
    facts: DeskFacts


def business_router(deps: BusinessPage) -> APIRouter:
    """`/business`, behind the login."""
    router = APIRouter()
    signed_in = Depends(deps.auth.page)

    @router.get("/business")
    async def business(session: Session = signed_in) -> Response:
        view = business_view(deps.facts, deps.clock.wall())
        return deps.pages.render("business.html", session=session, nav="business", view=view)

    return router
