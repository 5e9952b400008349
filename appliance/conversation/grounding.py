"""Grounding: a sentence of the agent's may state no fact that the call has not given it.

The brief's rule for a front desk is that a reply holds no fact that is not in the business
profile or a tool result. A small model asked "Who won the World Cup in 2018?" answers "France"
from its training, and asked the price of a service it does not find it may invent one. The
persona's rules ask it not to; this module checks it in code.

A fact here is what a caller would act on and cannot check: a number (a price, a time, a date, a
phone number) or a name (a capitalised word inside a sentence, or an acronym). A sentence is
grounded when each of its facts appears in what the call has given the model: the system prompt
(the persona and the business profile), the conversation so far (the caller's own words
included), recalled notes and this turn's tool results. Days of the week, months, titles and the
words that are capitalised in any English sentence ("I", "OK", "AM") are not facts.

The check is deliberately narrow: words are compared, not meanings, so "we open at nine" after a
tool said "09:00" is let through (a number written as a word is not checked), and a wrong
pairing of two facts that are both in the profile is not caught. What it does catch is the
invented answer, which is the failure measured on this model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["Grounding"]

_NUMBER: Final = re.compile(r"\d+(?:[.,:]\d+)*")
_PHONE: Final = re.compile(r"\+?\d(?:[ ().-]{0,2}\d){6,}")
"""A phone number's run of digits (7 or more, spaced or not): one fact, not several numbers
("+1 555 010 0100" must not make "10" or "100" known)."""


_ISO_DATE: Final = re.compile(r"\d{4}-\d\d-\d\d")


def _phones(text: str) -> tuple[set[str], str]:
    """The phone numbers in `text` as bare digits, and `text` without them."""
    found: set[str] = set()

    def take(match: re.Match[str]) -> str:
        if _ISO_DATE.fullmatch(match.group().strip()):
            return match.group()  # 2026-12-08 is a date: its numbers are said one by one
        found.add(re.sub(r"\D", "", match.group()))
        return " "

    return found, _PHONE.sub(take, text)


_APOSTROPHES: Final = "'\u2019-"
_WORD: Final = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_CAMEL: Final = re.compile(r"[A-Z][a-z'\u2019]*")
_NOT_FACTS: Final = frozenset(
    """i i'm i'll i've i'd ok okay am pm a.m p.m mr mrs ms dr doctor sir madam
    monday tuesday wednesday thursday friday saturday sunday today tomorrow tonight yesterday
    january february march april may june july august september october november december
    yes no please thanks thank goodbye bye hello hi sorry""".split()  # noqa: SIM905 - a word list
)


def _numbers(text: str) -> set[str]:
    """Every number in `text`, and the forms the same number takes when said: "09:00" is also
    "9"; "17:30" is also "5:30"; "1,250.00" is also "1250"; "0142" is also "142"."""
    found, rest = _phones(text)
    for raw in _NUMBER.findall(rest):
        plain = raw.replace(",", "")
        found.add(plain)
        hour, colon, minutes = plain.partition(":")
        if not colon:
            found.add(plain.removesuffix(".00").lstrip("0") or "0")
            continue
        for h in {int(hour), int(hour) % 12 or 12}:
            found.add(str(h) if minutes == "00" else f"{h}:{minutes}")
    return found


def _said_numbers(sentence: str) -> set[str]:
    """The numbers a sentence states, each in its plainest form ("9:00" as "9", "$75.00" as
    "75")."""
    stated, rest = _phones(sentence)
    for raw in _NUMBER.findall(rest):
        plain = raw.replace(",", "")
        hour, colon, minutes = plain.partition(":")
        if colon:
            stated.add(str(int(hour)) if minutes == "00" else f"{int(hour)}:{minutes}")
        else:
            stated.add(plain.removesuffix(".00").lstrip("0") or "0")
    return stated


def _names(sentence: str) -> list[str]:
    """The names a sentence states: capitalised words after its first word, and acronyms."""
    names = []
    for index, match in enumerate(_WORD.finditer(sentence)):
        word = match.group().rstrip(_APOSTROPHES)
        acronym = len(word) > 1 and word.isupper()
        if (index > 0 and word[0].isupper()) or acronym:
            names.append(word)
    return names


class Grounding:
    """What one call has given the model, and the check of a sentence against it."""

    def __init__(self, sources: Iterable[str] = ()) -> None:
        self._words: set[str] = set()
        self._numbers: set[str] = set()
        for text in sources:
            self.add(text)

    def add(self, text: str) -> None:
        """`text` is now known to the call (a tool's result, the caller's words)."""
        self._words.update(word.lower().rstrip(_APOSTROPHES) for word in _WORD.findall(text))
        self._numbers.update(_numbers(text))

    def unsupported(self, sentence: str) -> list[str]:
        """The facts in `sentence` that nothing known to the call states; empty when it is
        grounded."""
        missing = [n for n in sorted(_said_numbers(sentence)) if n not in self._numbers]
        for name in _names(sentence):
            # "NewYork" for the profile's "America/New_York": each capitalised part is checked
            parts = _CAMEL.findall(name) if not name.isupper() else [name]
            if not all(self._knows(part) for part in parts or [name]):
                missing.append(name)
        return missing

    def _knows(self, name: str) -> bool:
        key = name.lower()
        if key in _NOT_FACTS or key in self._words:
            return True
        base = key.removesuffix("'s").removesuffix("\u2019s")
        return base in self._words or (base.endswith("s") and base[:-1] in self._words)
