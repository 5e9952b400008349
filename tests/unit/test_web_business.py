"""The business page's content, worked out from a profile at a given moment."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from appliance.conversation.profile import BusinessProfile
from appliance.web.business import DeskFacts, business_view

_ZONE = ZoneInfo("Pacific/Auckland")


def _facts(**profile: object) -> DeskFacts:
    made = BusinessProfile.model_validate(
        {"name": "Kiwi Bikes", "timezone": "Pacific/Auckland", **profile}
    )
    return DeskFacts(business_name=made.name, profile=made, tools=(), system_prompt="You are")


def test_the_week_and_the_open_sentence_are_in_the_business_time_zone() -> None:
    facts = _facts(hours={"monday": "09:00-17:00", "tuesday": ["09:00-12:00", "13:00-17:00"]})
    # Sunday 22:30 UTC is Monday 11:30 in Auckland (summer time, UTC+13).
    at = dt.datetime(2026, 12, 6, 22, 30, tzinfo=dt.UTC)
    view = business_view(facts, at.timestamp())
    assert view.now == dt.datetime(2026, 12, 7, 11, 30, tzinfo=_ZONE)
    assert view.open_now and view.now_said == "We're open right now, until 5 PM."
    assert [(d.date.isoformat(), d.today, d.hours) for d in view.week[:3]] == [
        ("2026-12-07", True, "from 9 AM to 5 PM"),
        ("2026-12-08", False, "from 9 AM to noon and from 1 PM to 5 PM"),
        ("2026-12-09", False, "closed"),
    ]
    assert len(view.week) == 7 and view.week[-1].date == dt.date(2026, 12, 13)


def test_exceptions_are_listed_at_their_next_date_and_past_ones_are_left_out() -> None:
    facts = _facts(
        hours={"friday": "09:00-17:00"},
        exceptions=[
            {"date": "01-01", "name": "New Year's Day"},
            {"date": "12-24", "name": "Christmas Eve", "hours": "09:00-12:00"},
            {"date": "2026-12-01", "name": "Stocktake"},
            {"date": "02-29", "name": "Leap day"},
            {"date": "2027-12-24", "name": "Moving day"},
        ],
    )
    view = business_view(facts, dt.datetime(2026, 12, 10, 12, tzinfo=_ZONE).timestamp())
    assert [(d.date.isoformat(), d.holiday, d.hours) for d in view.upcoming] == [
        ("2026-12-24", "Christmas Eve", "from 9 AM to noon"),
        ("2027-01-01", "New Year's Day", "closed"),
        ("2027-12-24", "Moving day", "closed"),  # that day only, over the yearly entry
        ("2028-02-29", "Leap day", "closed"),
    ]


def test_a_long_faq_is_said_to_be_recalled_and_no_profile_has_no_hours() -> None:
    faq = [{"question": f"Q{n}?", "answer": f"A{n}."} for n in range(9)]
    view = business_view(_facts(faq=faq), 1_800_000_000.0)
    assert view.faq_recalled and view.faq_in_prompt_max == 8
    assert not business_view(_facts(faq=faq[:8]), 1_800_000_000.0).faq_recalled
    bare = DeskFacts(business_name="the front desk", profile=None, tools=(), system_prompt="x")
    view = business_view(bare, 1_800_000_000.0)
    assert view.now is None and view.week == () and view.upcoming == () and view.now_said == ""
