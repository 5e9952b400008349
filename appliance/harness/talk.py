"""What `appliance talk` prints while the person at the box talks: one line per turn."""

from __future__ import annotations

from appliance.conversation.events import (
    CallEnded,
    Event,
    PhraseSpoken,
    ReplyFinished,
    ReplyInterrupted,
    TranscriptFinal,
)

__all__ = ["print_event"]


def print_event(event: Event) -> None:
    """Print what was heard and said as it happens (flushed: a pipe sees each line at once)."""
    match event:
        case TranscriptFinal(text=text) if text:
            line = f"you: {text}"
        case PhraseSpoken(heard=heard, interrupted=cut):
            line = f"agent: {heard}" + (" [interrupted]" if cut else "")
        case ReplyFinished(text=text):
            line = f"agent: {text}"
        case ReplyInterrupted(heard=heard):
            line = f"agent: {heard} [interrupted]"
        case CallEnded(reason=reason):
            line = f"(ended: {reason})"
        case _:
            return
    print(line, flush=True)
