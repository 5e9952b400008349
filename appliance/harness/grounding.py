"""Whether a reply's numbers come from somewhere: the profile, a tool's result, the caller.

The cheapest sign of an invented answer is a number nobody gave the model: a price, an hour, a
date, degrees. Every number the reply says (in digits or in words, "twenty five" as 25) must
appear in the text the agent was given. Names and places are not checked: they are either in
the profile too, or harmless words like "Saturday".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["numbers_in", "ungrounded"]

_UNITS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
""""one" is left out: it is a pronoun far more often than a number on the phone."""
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+")


def numbers_in(text: str) -> set[str]:
    """The numbers `text` says, as digit strings ("$1,200.50" -> "1200.50", "forty five" -> 45)."""
    found: set[str] = set()
    words = _TOKEN.findall(text.lower().replace("-", " "))
    i = 0
    while i < len(words):
        word = words[i]
        if word[0].isdigit():
            found.add(word.replace(",", "").rstrip(".").removesuffix(".00"))
        elif word in _TENS:
            value = _TENS[word]
            following = words[i + 1] if i + 1 < len(words) else ""
            if following in _UNITS and 0 < _UNITS[following] < 10:
                value += _UNITS[following]
                i += 1
            found.add(str(value))
        elif word in _UNITS:
            found.add(str(_UNITS[word]))
        i += 1
    return found


def ungrounded(reply: str, sources: Iterable[str]) -> list[str]:
    """The numbers in `reply` that none of `sources` says, in order of appearance."""
    known: set[str] = set()
    for source in sources:
        known |= numbers_in(source)
        # "9 AM" may be said "nine"; "8:00" as "8": the parts of a time are known too.
        known |= {part for number in numbers_in(source) for part in re.split(r"[.:]", number)}
    return sorted(numbers_in(reply) - known, key=reply.lower().find)
