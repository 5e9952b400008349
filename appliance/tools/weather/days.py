"""The day a caller means ("tomorrow", "on Friday"), resolved in code from today's date.

A small model cannot be trusted with calendars, so the tool takes the caller's words and this
module does the arithmetic. A weekday is the next one to come, today included ("Friday" said on a
Friday is today); "next Friday" said on a Friday is a week on.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["resolve_day"]

_WEEKDAYS = {
    name: number
    for number, names in enumerate(
        (
            ("monday", "mon"),
            ("tuesday", "tue", "tues"),
            ("wednesday", "wed"),
            ("thursday", "thu", "thur", "thurs"),
            ("friday", "fri"),
            ("saturday", "sat"),
            ("sunday",),  # not "sun": "will there be sun?" names no day
        )
    )
    for name in names
}
_TODAY = frozenset(
    {"today", "tonight", "now", "currently", "right", "morning", "afternoon", "evening"}
)
_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}|[a-z]+")


def resolve_day(words: str | None, today: dt.date) -> dt.date | None:
    """The date `words` name, counted from `today`; today when they are empty; None when they
    name no day this understands (the tool then asks which day)."""
    tokens = _TOKEN.findall((words or "").lower())
    if not tokens:
        return today
    written = [token for token in tokens if token[0].isdigit()]
    if written:
        try:
            return dt.date.fromisoformat(written[0])
        except ValueError:
            return None
    ahead = _days_ahead(tokens, today.weekday())
    return None if ahead is None else today + dt.timedelta(days=ahead)


def _days_ahead(tokens: list[str], weekday: int) -> int | None:
    if "tomorrow" in tokens:
        return 2 if "after" in tokens else 1
    if "yesterday" in tokens:
        return -1
    named = [_WEEKDAYS[token] for token in tokens if token in _WEEKDAYS]
    if named:
        ahead = (named[0] - weekday) % 7
        return 7 if ahead == 0 and "next" in tokens else ahead
    return 0 if _TODAY.intersection(tokens) else None
