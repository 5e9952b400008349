"""The caller's answer to a read-back: yes, no, or neither.

A tool with a side effect (a text sent, a booking made) runs only after its read-back is said
to the caller and their next turn agrees (`think.py`). This reads that turn in code, never by
the model: a model can be talked into anything, and the small ones hear "yes" in "yes, but not
now". A "no" anywhere wins over a "yes"; a key pressed counts as its words ("pressed 1": yes).
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["Answer", "answer_to_readback"]

Answer = Literal["yes", "no"]

_NO: Final = re.compile(
    r"\b(no|nope|nah|don'?t|do not|not|never|wait|hold on|wrong|changed? my mind)\b"
    r"|\bpressed [2-9*#]\b",
    re.IGNORECASE,
)
_YES: Final = re.compile(
    r"\b(yes|yeah|yep|yup|sure|please do|go ahead|do it|send it|book it|that'?s right|correct"
    r"|ok|okay|right|absolutely|definitely|please)\b|\bpressed 1\b",
    re.IGNORECASE,
)
_BACK_OUT: Final = re.compile(r"\b(cancel|stop|forget it)\b", re.IGNORECASE)
"""Words that back out of an action, unless a yes says the action is wanted: "yes, cancel
it" to "Shall I cancel your appointment?" is a yes; a bare "cancel" is not."""


def answer_to_readback(words: str) -> Answer | None:
    """Whether the words say "yes" or "no"; None when neither (the caller asked something else)."""
    if _NO.search(words):
        return "no"
    if _YES.search(words):
        return "yes"
    if _BACK_OUT.search(words):
        return "no"
    return None
