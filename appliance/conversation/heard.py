"""What the caller actually heard of a reply, from the line's playback position.

Each spoken sentence covers a range of frame positions on the line. When the caller cuts in,
the line reports how far playback got; sentences before that point were heard whole, the one in
progress was heard up to the same fraction of its words, and the rest was never said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spoken", "split_heard"]


@dataclass(frozen=True, slots=True)
class Spoken:
    """A sentence and the frame positions its audio occupies on the line, `[start, end)`."""

    text: str
    start: int
    end: int


def _words_heard(text: str, fraction: float) -> str:
    words = text.split()
    # Count by characters, not words: long words take longer to say.
    budget = fraction * sum(len(w) + 1 for w in words)
    kept: list[str] = []
    used = 0
    for word in words:
        used += len(word) + 1
        if used > budget:
            break
        kept.append(word)
    return " ".join(kept)


def split_heard(spoken: Sequence[Spoken], heard_until: int) -> tuple[str, str]:
    """(heard, unsaid) text, given that frames before position `heard_until` were heard."""
    heard: list[str] = []
    unsaid: list[str] = []
    for sentence in spoken:
        if sentence.end <= heard_until:
            heard.append(sentence.text)
        elif sentence.start >= heard_until:
            unsaid.append(sentence.text)
        else:
            fraction = (heard_until - sentence.start) / max(1, sentence.end - sentence.start)
            part = _words_heard(sentence.text, fraction)
            if part:
                heard.append(part)
            rest = sentence.text[len(part) :].strip()
            if rest:
                unsaid.append(rest)
    return " ".join(heard), " ".join(unsaid)
