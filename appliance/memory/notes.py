"""What the language model is asked after a call, and how its answers are checked.

Measured with the default model (Qwen2.5-Coder-0.5B): asked with the transcript first and the
instruction after it, it summarizes a short call well; asked for facts, it also invents some
("prefers pizza" from a caller who said "go forward ten meters"), now and then echoes the
transcript instead of summarizing it, and reads the agent's promises as deeds ("The assistant
texted a summary" when the agent only said it would). So:
- The model is asked only what the caller wanted, in one sentence; what the agent did is told
  from the call's record (`happened`). A sentence that does not start with "The caller", tells
  of a deed ("sent", "texted", "booked", "told" ...) or of the assistant, or is mostly not the
  caller's words (as heard with confidence) is replaced by the caller's own words, quoted.
- A fact is kept only when most of its words are the caller's own (by their first four letters:
  "booked" matches "book"), said in turns the speech-to-text was sure of (the caller passes
  only those), and when it is not about the caller's name or a deed.
- The caller's name is read from their words by a pattern ("my name is ..."), not from the
  model, and again only from sure turns: a misheard "Corral" is not kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from appliance.conversation.ports import Message

__all__ = [
    "caller_name",
    "caller_request",
    "claims_a_deed",
    "facts_messages",
    "grounded_facts",
    "request_messages",
]

_MAX_TRANSCRIPT_CHARS: Final = 3000
"""The end of a long call is what the prompt keeps (about 750 tokens)."""
_MAX_FACTS: Final = 8
_GROUNDED: Final = 0.6
"""Share of a fact's words that the caller must have said."""
_REQUEST_GROUNDED: Final = 0.5
"""Share of the request sentence's own words (past "The caller wanted to know") the caller said."""
_MAX_QUOTE: Final = 300
_NAME = re.compile(r"\b(?:[Mm]y name is|[Tt]his is|[Nn]ame's)\s+([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)")
_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])?\s*(.+?)\s*$")
_WORD = re.compile(r"[a-z0-9]+")
_ECHO = re.compile(r"^\s*(?:caller|agent)\s*:", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")
# A deed done, or the one who could have done it: the record tells of these, never the model.
_DEED = re.compile(
    r"\b(?:assistant|agent|receptionist|sent|texted|emailed|e-mailed|messaged|mailed|"
    r"transferred|forwarded|connected|booked|scheduled|reserved|confirmed|arranged|ordered|"
    r"cancell?ed|called back|told|said|explained|answered|replied|offered|agreed|promised|"
    r"received|provided|gave|informed|helped)\b",
    re.IGNORECASE,
)
_ABOUT_NAME = re.compile(r"\bnamed?\b", re.IGNORECASE)
# Words that say nothing about the caller: a fact is judged by the rest.
_FILLER = frozenset(
    (  # noqa: SIM905 - a list of words reads best as words
        "a about an and any are as at be booked by called caller callers did do does for from "
        "had has have he her his i if in is it its me my name named no none not of on or she "
        "so that the their them they this to wants want was were will with would you your"
    ).split()
)
# The words a request sentence is framed in: judged by the rest.
_REQUEST_FRAME = frozenset(
    (  # noqa: SIM905 - a list of words reads best as words
        "wanted asked asking inquired enquired know find out like needed needs get some "
        "information whether ask check learn see talk speak"
    ).split()
)

_REQUEST_ASK = (
    "Here is a phone call between a caller and {agent}, the assistant of {business}:\n\n"
    "{transcript}\n\n"
    "In one sentence starting with 'The caller wanted', say what the caller wanted. Only "
    "what the caller asked for, in their words; not what anyone said or did."
)
_FACTS_ASK = (
    "Here is a phone call between a caller and {agent}:\n\n{transcript}\n\n"
    "List the facts about the caller worth remembering next time: their name, what they "
    "booked or ordered, their preferences, needs or health. Only what the caller said; never "
    "guess. One short fact per line, starting with '- '. If there is nothing, write '- none'."
)


def request_messages(transcript: str, *, agent: str, business: str) -> list[Message]:
    ask = _REQUEST_ASK.format(
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


def claims_a_deed(text: str) -> bool:
    """Whether `text` tells of something done (sent, booked ...) or of the agent at all."""
    return bool(_DEED.search(text))


def caller_request(
    text: str, caller_said: str, *, agent: str = "", business: str = ""
) -> tuple[str, bool]:
    """(what the caller wanted, whether the model's sentence was usable): a sentence that fails
    the checks in the module docstring becomes the caller's own words, quoted. The model calls
    the business by the agent's name ("if Tess would open on Saturday"): it is named as the
    business instead, and neither name counts as the caller's words or against them."""
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    named = set(_words(f"{agent} {business}"))
    words = [w for w in _words(first) if w not in _REQUEST_FRAME and w not in named]
    said = _words(caller_said)
    stems = {w[:4] for w in said}
    backed = sum(1 for w in words if w in said or w[:4] in stems)
    usable = (
        first.lower().startswith("the caller")
        and not _ECHO.search(first)
        and not claims_a_deed(first)
        and bool(words)
        and backed / len(words) >= _REQUEST_GROUNDED
    )
    if usable:
        if agent:
            first = re.sub(rf"\b{re.escape(agent)}\b", business or "the business", first)
        return (first if first.endswith((".", "?", "!")) else first + "."), True
    quote = " ".join(caller_said.split())
    if len(quote) > _MAX_QUOTE:
        quote = quote[: _MAX_QUOTE - 1] + "…"
    return (f'The caller said: "{quote}"' if quote else "The caller said nothing."), False


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _FILLER and w != "caller"]


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
            # The name comes from its own pattern; deeds come from the record.
            if _ABOUT_NAME.search(fact) or claims_a_deed(fact):
                continue
            backed = sum(1 for w in words if w in said or w[:4] in stems)
            if backed / len(words) >= _GROUNDED and fact not in kept:
                kept.append(fact)
    return kept[:_MAX_FACTS]


def caller_name(caller_said: Sequence[str]) -> str | None:
    """The name the caller gave ("my name is Maria Lopez"), if they gave one (pass only the
    turns heard with confidence)."""
    for said in caller_said:
        match = _NAME.search(said)
        if match:
            return match.group(1)
    return None
