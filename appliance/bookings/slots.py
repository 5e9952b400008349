"""Free times for a service on a day: opening hours minus what the calendar holds, in code.

Everything is compared as instants (UTC), never as wall times, so a day when the clocks change
has the right slots: a start is a wall time on the business's clock, its end that many real
minutes later. (Python compares two datetimes of one zone by their wall times, so they are
kept in UTC here and turned into the business's time only to be said.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from appliance.bookings.calendar import Appointment

__all__ = ["at_local", "day_bounds", "free_starts", "starts_in_hours"]

Ranges = Sequence[tuple[dt.time, dt.time]]


def at_local(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    """`at` on `day` on the business's clock, as an instant in UTC; a wall time that a
    spring-forward skips becomes the instant it would have been, 24:00 (`time.max`) the next
    midnight."""
    if at == dt.time.max:
        return at_local(day + dt.timedelta(days=1), dt.time(0), zone)
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The instants the business's `day` begins and ends."""
    return at_local(day, dt.time(0), zone), at_local(day, dt.time.max, zone)


def starts_in_hours(
    day: dt.date, hours: Ranges, zone: ZoneInfo, *, minutes: int, step: int
) -> list[dt.datetime]:
    """Every start (UTC), `step` minutes apart from each opening, whose `minutes` end by
    closing."""
    length = dt.timedelta(minutes=minutes)
    starts: list[dt.datetime] = []
    for opens, closes in hours:
        start, end = at_local(day, opens, zone), at_local(day, closes, zone)
        while start + length <= end:
            starts.append(start)
            start += dt.timedelta(minutes=step)
    return starts


def free_starts(
    starts: Sequence[dt.datetime],
    taken: Sequence[Appointment],
    *,
    minutes: int,
    now: dt.datetime,
) -> list[dt.datetime]:
    """The `starts` not in the past whose `minutes` overlap nothing `taken`."""
    length = dt.timedelta(minutes=minutes)
    return [
        start
        for start in starts
        if start >= now and not any(event.overlaps(start, start + length) for event in taken)
    ]
