"""Times and free slots for bookings, worked out in code: what a caller's words can mean, and
which starts are free, in the business's time zone (a day the clocks change included)."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from appliance.bookings.calendar import Appointment
from appliance.bookings.slots import at_local, free_starts, starts_in_hours
from appliance.bookings.times import clock_times

NEW_YORK = ZoneInfo("America/New_York")
T = dt.time


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        ("3 pm", [T(15)]),
        ("3pm", [T(15)]),
        ("3 p.m.", [T(15)]),
        ("9am", [T(9)]),
        ("15:00", [T(15)]),
        ("09:30", [T(9, 30)]),
        ("3:30", [T(3, 30), T(15, 30)]),
        ("at 3", [T(3), T(15)]),
        ("three thirty", [T(3, 30), T(15, 30)]),
        ("half past two", [T(2, 30), T(14, 30)]),
        ("half past two in the afternoon", [T(14, 30)]),
        ("quarter to ten", [T(9, 45), T(21, 45)]),
        ("eleven in the morning", [T(11)]),
        ("ten in the evening", [T(22)]),
        ("noon", [T(12)]),
        ("midday", [T(12)]),
        ("12:30", [T(12, 30)]),
        ("I am free at 3", [T(3), T(15)]),  # "am" is no morning unless it follows a time
        ("whenever", []),
        ("25:00", []),
    ],
)
def test_what_a_caller_can_mean_by_a_time(said: str, meant: list[dt.time]) -> None:
    assert list(clock_times(said)) == meant


def _local(starts: list[dt.datetime]) -> list[str]:
    return [s.astimezone(NEW_YORK).strftime("%H:%M") for s in starts]


def test_starts_are_steps_from_each_opening_and_end_by_closing() -> None:
    day = dt.date(2026, 12, 9)
    hours = ((T(9), T(11)), (T(14), T(15)))
    thirty = starts_in_hours(day, hours, NEW_YORK, minutes=30, step=30)
    assert _local(thirty) == ["09:00", "09:30", "10:00", "10:30", "14:00", "14:30"]
    ninety = starts_in_hours(day, hours, NEW_YORK, minutes=90, step=30)
    assert _local(ninety) == ["09:00", "09:30"]  # none in the hour after lunch


def test_taken_and_past_starts_are_not_free() -> None:
    day = dt.date(2026, 12, 9)
    starts = starts_in_hours(day, ((T(9), T(12)),), NEW_YORK, minutes=60, step=30)
    meeting = Appointment(
        "m", at_local(day, T(10, 15), NEW_YORK), at_local(day, T(10, 45), NEW_YORK)
    )
    now = at_local(day, T(9, 10), NEW_YORK)
    free = free_starts(starts, [meeting], minutes=60, now=now)
    # 9:00 has passed; 9:30, 10:00 and 10:30 would overlap the meeting; 11:00 ends at noon.
    assert _local(free) == ["11:00"]


def test_a_day_the_clocks_go_forward_has_slots_in_real_time() -> None:
    spring = dt.date(2026, 3, 8)  # 2 AM does not happen in New York
    starts = starts_in_hours(spring, ((T(1), T(4)),), NEW_YORK, minutes=60, step=60)
    # 1 AM to 4 AM that night is two real hours: one-hour slots at 1 AM and 3 AM, no 2 AM.
    assert _local(starts) == ["01:00", "03:00"]
    assert at_local(spring, T(2, 30), NEW_YORK).astimezone(NEW_YORK).hour == 3


def test_a_day_the_clocks_go_back_has_its_extra_hour() -> None:
    autumn = dt.date(2026, 11, 1)  # 1 AM to 2 AM happens twice
    starts = starts_in_hours(autumn, ((T(0), T(3)),), NEW_YORK, minutes=60, step=60)
    assert len(starts) == 4  # three wall hours, four real ones
    assert all(b - a == dt.timedelta(hours=1) for a, b in itertools.pairwise(starts))
