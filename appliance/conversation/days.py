"""Days as callers name them and as the agent says them: worked out in code, never by the model.

`resolve_day` turns "today", "tomorrow", "saturday", "next monday", "christmas", "december 25th",
"the 25th" or "2026-12-25" into a date relative to `today` (the business's today). A bare
weekday is the next one on or after today; "next <weekday>" is the next one after today. A
named day or a month and day without a year is the next one on or after today. A part of the
day said alone ("this evening", "in the morning") is today's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "WEEKDAYS",
    "AnnualDay",
    "resolve_day",
    "spoken_date",
    "spoken_range",
    "spoken_ranges",
    "spoken_time",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SHORT_WEEKDAYS = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3}
_SHORT_WEEKDAYS |= {"fri": 4, "sat": 5, "sun": 6}
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip

AnnualDay = tuple[int, int]
"""(month, day): a day that comes back every year."""

_BUILT_IN_DAYS: Mapping[str, AnnualDay] = {
    "new year's day": (1, 1),
    "new years day": (1, 1),
    "new year": (1, 1),
    "christmas eve": (12, 24),
    "christmas day": (12, 25),
    "christmas": (12, 25),
    "xmas": (12, 25),
    "boxing day": (12, 26),
    "new year's eve": (12, 31),
    "new years eve": (12, 31),
}
"""Fixed-date days callers name; a profile's own exceptions come first."""


def _clean(text: str) -> str:
    words = re.sub(r"[^a-z0-9'\- ]+", " ", text.lower().replace("\u2019", "'")).split()
    fillers = {"on", "the", "this", "coming", "for", "of", "in", "at"}
    return " ".join(w for w in words if w not in fillers)


def _next_annual(today: dt.date, month: int, day: int) -> dt.date | None:
    for year in (today.year, today.year + 1, today.year + 4):  # Feb 29 waits for a leap year
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _weekday(word: str) -> int | None:
    word = word.removesuffix("s") if word.endswith("days") else word
    if word in WEEKDAYS:
        return WEEKDAYS.index(word)
    return _SHORT_WEEKDAYS.get(word)


def _month(word: str) -> int | None:
    for index, month in enumerate(_MONTHS, start=1):
        if word == month or (len(word) >= 3 and month.startswith(word)):
            return index
    return None


def _iso(text: str, _: dt.date) -> dt.date | None:
    found = re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", text)
    if found is None:
        return None
    try:
        return dt.date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None


def _relative(text: str, today: dt.date) -> dt.date | None:
    shifts = {"today": 0, "tonight": 0, "now": 0, "currently": 0, "tomorrow": 1, "yesterday": -1}
    if re.search(r"\bday after tomorrow\b", text):
        return today + dt.timedelta(days=2)
    for word, shift in shifts.items():
        if re.search(rf"\b{word}\b", text):
            return today + dt.timedelta(days=shift)
    return None


def _month_day(text: str, today: dt.date) -> dt.date | None:
    words = text.split()
    for index, word in enumerate(words):
        month = _month(word)
        if month is None:
            continue
        for neighbour in (words[index + 1 : index + 2], words[index - 1 : index] if index else []):
            number = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)?", neighbour[0]) if neighbour else None
            if number is not None:
                return _next_annual(today, month, int(number[1]))
    return None


def _day_of_month(text: str, today: dt.date) -> dt.date | None:
    found = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)", text)
    if found is None:
        return None
    day = int(found[1])
    month, year = today.month, today.year
    for _ in range(13):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        month, year = (1, year + 1) if month == 12 else (month + 1, year)
    return None


def _weekday_named(text: str, today: dt.date) -> dt.date | None:
    words = text.split()
    for index, word in enumerate(words):
        weekday = _weekday(word)
        if weekday is None:
            continue
        ahead = (weekday - today.weekday()) % 7
        if index and words[index - 1] in {"next", "following"} and ahead == 0:
            ahead = 7
        return today + dt.timedelta(days=ahead)
    return None


def _part_of_today(text: str, today: dt.date) -> dt.date | None:
    # Only when nothing else is said: "saturday morning" is Saturday, and "the 3rd in the
    # morning", which the other parsers miss, should be asked about rather than taken as today.
    return today if re.fullmatch(r"(morning|afternoon|evening)", text) else None


def _named(text: str, today: dt.date, named: Mapping[str, AnnualDay]) -> dt.date | None:
    for label, (month, day) in sorted(named.items(), key=lambda item: -len(item[0])):
        if re.search(rf"(^|\s){re.escape(_clean(label))}($|\s)", text):
            return _next_annual(today, month, day)
    return None


def resolve_day(
    text: str, today: dt.date, named: Iterable[tuple[str, AnnualDay]] = ()
) -> dt.date | None:
    """The date a caller means by `text`, or None when it names no day this understands.

    `named` adds days by name (a profile's holidays, "Christmas Day"), before the built-in ones.
    """
    cleaned = _clean(text)
    if not cleaned:
        return None
    days = {_clean(label): when for label, when in named if _clean(label)}
    days |= {label: when for label, when in _BUILT_IN_DAYS.items() if label not in days}
    parsers: Sequence[Callable[[str, dt.date], dt.date | None]] = (
        _iso,
        _month_day,
        lambda t, d: _named(t, d, days),
        _relative,
        _day_of_month,
        _weekday_named,
        _part_of_today,
    )
    for parser in parsers:
        found = parser(cleaned, today)
        if found is not None:
            return found
    return None


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spoken_date(day: dt.date, today: dt.date) -> str:
    """ "Saturday the 6th" within today's month, else "Thursday, January 1st" (with a far year)."""
    weekday = day.strftime("%A")
    if (day.year, day.month) == (today.year, today.month):
        return f"{weekday} the {_ordinal(day.day)}"
    said = f"{weekday}, {day.strftime('%B')} {_ordinal(day.day)}"
    if not 0 <= (day - today).days <= 300:
        said += f", {day.year}"
    return said


def spoken_time(at: dt.time) -> str:
    """ "9 AM", "5:30 PM", "noon", "midnight"."""
    if at == dt.time.max or at == dt.time(0):
        return "midnight"
    if at == dt.time(12):
        return "noon"
    hour = at.hour % 12 or 12
    minutes = f":{at.minute:02d}" if at.minute else ""
    return f"{hour}{minutes} {'AM' if at.hour < 12 else 'PM'}"


def spoken_range(start: dt.time, end: dt.time) -> str:
    return f"from {spoken_time(start)} to {spoken_time(end)}"


def spoken_ranges(ranges: Sequence[tuple[dt.time, dt.time]]) -> str:
    """ "from 9 AM to noon and from 2 PM to 6 PM"."""
    parts = [spoken_range(start, end) for start, end in ranges]
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]
