"""The clock times a caller means ("3 pm", "15:00", "half past two", "noon", "at 3"), in code.

A caller rarely says AM or PM, so a bare "3" stands for both 3 AM and 3 PM: `clock_times` gives
every reading, and the booking tools keep the ones inside opening hours (one left: that is it;
two: the caller is asked which). The model passes the caller's words; it never does the sums.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

__all__ = ["clock_times"]

_WORDS: Final = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBERS: Final = {word: n for n, word in enumerate((*_WORDS, "eleven", "twelve"), start=1)}
_PAST: Final = {"quarter": 15, "half": 30, "twenty": 20, "ten": 10, "five": 5, "twenty five": 25}
_SAID_HOUR: Final = rf"(\d|\b(?:{'|'.join(_NUMBERS)}|thirty|fifteen|forty five))"
# "am" only after a time: "I am free at 3" says nothing about the morning.
_MORNING: Final = re.compile(rf"{_SAID_HOUR}\s*a\.?\s?m\b|\bmorning\b")
_AFTERNOON: Final = re.compile(rf"{_SAID_HOUR}\s*p\.?\s?m\b|\b(afternoon|evening|tonight)\b")
_NAMED: Final = {"noon": dt.time(12), "midday": dt.time(12), "midnight": dt.time(0)}
_DIGITS: Final = re.compile(r"\b(\d{1,2})(?:[:.h](\d{2}))?(?!\d)")
_PAST_OR_TO: Final = re.compile(
    r"\b(quarter|half|twenty five|twenty|ten|five) (past|after|to) (\w+)\b"
)


def _hour(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBERS.get(word)


def _past_or_to(found: re.Match[str]) -> tuple[int, int, bool] | None:
    """ "half past two", "quarter to ten"."""
    hour = _hour(found[3])
    if hour is None or not 1 <= hour <= 12:
        return None
    minutes = _PAST[found[1]]
    if found[2] == "to":
        return (hour - 2) % 12 + 1, 60 - minutes, False
    return hour, minutes, False


def _spoken(text: str) -> tuple[int, int, bool] | None:
    """(hour, minute, written with 24-hour digits) as said, before AM/PM is settled."""
    if found := _PAST_OR_TO.search(text):
        return _past_or_to(found)
    if found := _DIGITS.search(text):
        hour, minute = int(found[1]), int(found[2] or 0)
        if hour > 23 or minute > 59:
            return None
        return hour, minute, hour > 12 or hour == 0 or found[1].startswith("0")
    for word, hour in _NUMBERS.items():
        if re.search(rf"\b{word}\b", text):
            minute = 30 if re.search(rf"\b{word} thirty\b", text) else 0
            return hour, minute, False
    return None


def _readings(said: str, hour: int, minute: int, *, twenty_four: bool) -> tuple[dt.time, ...]:
    if twenty_four:
        return (dt.time(hour, minute),)
    morning, afternoon = dt.time(hour % 12, minute), dt.time(hour % 12 + 12, minute)
    if _AFTERNOON.search(said):
        return (afternoon,)
    if _MORNING.search(said):
        return (morning,)
    if hour == 12:
        return (dt.time(12, minute),)  # "at 12" or "12:30": midday, not past midnight
    return (morning, afternoon)


def clock_times(text: str) -> tuple[dt.time, ...]:
    """Every clock time `text` may mean, earliest first; none when it names no time."""
    said = text.strip().lower()
    for word, at in _NAMED.items():
        if re.search(rf"\b{word}\b", said):
            return (at,)
    spoken = _spoken(said)
    if spoken is None:
        return ()
    hour, minute, twenty_four = spoken
    return _readings(said, hour, minute, twenty_four=twenty_four)
