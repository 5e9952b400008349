"""What the language model is asked after a call, and how its answers are checked.

Measured with the default model (Qwen2.5-Coder-0.5B): asked with the transcript first and the
instruction after it, it summarizes a short call well; asked for facts, it also invents some
("prefers pizza" from a caller who said "go forward ten meters"), and now and then echoes the
transcript instead of summarizing it. So a fact is kept only when most of its words are the
caller's own (by their first four letters: "booked" matches "book"), and an echoed summary is
replaced by the caller's own words. The caller's name is read from their words by a pattern
("my name is ..."), not from the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from appliance.conversation.ports import Message

__all__ = ["caller_name", "facts_messages", "grounded_facts", "summary_messages", "usable_summary"]

_MAX_TRANSCRIPT_CHARS: Final = 3000
"""The end of a long call is what the prompt keeps (about 750 tokens)."""
_MAX_FACTS: Final = 8
_GROUNDED: Final = 0.6
"""Share of a fact's words that the caller must have said."""
_NAME = re.compile(r"\b(?:[Mm]y name is|[Tt]his is|[Nn]ame's)\s+([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)")
_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])?\s*(.+?)\s*$")
_WORD = re.compile(r"[a-z0-9]+")
_ECHO = re.compile(r"^\s*(?:caller|agent)\s*:", re.IGNORECASE | re.MULTILINE)
# Words that say nothing about the caller: a fact is judged by the rest.
_FILLER = frozenset(
    (  # noqa: SIM905 - a list of words reads best as words
        "a about an and any are as at be booked by called caller callers did do does for from "
        "had has have he her his i if in is it its me my name named no none not of on or she "
        "so that the their them they this to wants want was were will with would you your"
    ).split()
)

_SUMMARY_ASK = (
    "Here is a phone call between a caller and {agent}, the assistant of {business}:\n\n"
    "{transcript}\n\n"
    "Summarize this call in one or two sentences: what the caller wanted and what happened. "
    "Do not repeat the conversation."
)
_FACTS_ASK = (
    "Here is a phone call between a caller and {agent}:\n\n{transcript}\n\n"
    "List the facts about the caller worth remembering next time: their name, what they "
    "booked or ordered, their preferences, needs or health. Only what the caller said; never "
    "guess. One short fact per line, starting with '- '. If there is nothing, write '- none'."
)


def summary_messages(transcript: str, *, agent: str, business: str) -> list[Message]:
    ask = _SUMMARY_ASK.format(
        agent=agent, business=business, transcript=transcript[-_MAX_TRANSCRIPT_CHARS:]
    )
    return [
        Message(role="system", content="You summarize phone calls in the third person."),
        Message(role="user", content=ask),
    ]


def facts_messages(transcript: str, *, agent: str) -> list[Message]:
    ask = _FACTS_ASK.format(agent=agent, transcript=transcript[-_MAX_TRANSCRIPT_CHARS:])
    return [
        Message(role="system", content="You note facts about callers, for their next call."),
        Message(role="user", content=ask),
    ]


def usable_summary(text: str, caller_said: str) -> tuple[str, bool]:
    """(summary, whether the model's own was usable): an echo becomes the caller's words."""
    text = text.strip()
    if text and not _ECHO.search(text):
        return text, True
    said = " ".join(caller_said.split())
    return (f'The caller said: "{said[:300]}"' if said else "The caller said nothing."), False


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _FILLER]


def grounded_facts(text: str, caller_said: str) -> list[str]:
    """The model's facts (one per line, or ` - ` between them) that the caller's words bear out."""
    said = set(_words(caller_said))
    stems = {w[:4] for w in said}
    kept: list[str] = []
    for line in text.splitlines():
        item = _ITEM.match(line)
        for part in (item.group(1) if item else line).split(" - "):
            fact = part.strip().rstrip(".").strip()
            words = _words(fact)
            if not words or fact.lower() == "none":
                continue
            backed = sum(1 for w in words if w in said or w[:4] in stems)
            if backed / len(words) >= _GROUNDED and fact not in kept:
                kept.append(fact)
    return kept[:_MAX_FACTS]


def caller_name(caller_said: Sequence[str]) -> str | None:
    """The name the caller gave ("my name is Maria Lopez"), if they gave one."""
    for said in caller_said:
        match = _NAME.search(said)
        if match:
            return match.group(1)
    return None
