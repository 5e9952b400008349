"""What the caller asked for in their own words: the check before a tool that cannot be undone.

A small model sometimes names the wrong tool. With a caller's memory in its prompt, the 0.5B chose
`forget_me` for "Can I change my booking for Friday?" (6 phrasings of 6), and `end_call` for the
same words without it. Forgetting a caller and hanging up cannot be undone, so those tools run
only when the caller's latest words ask for them; otherwise nothing happens and the model is told
why, and answers the caller instead. A caller confirming in the next turn ("yes, please") still
counts: the words of their last `turns` turns are read.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.conversation.tools import ToolContext

__all__ = ["FAREWELL", "FORGET", "caller_asked"]

FORGET: Final = re.compile(
    r"\b(forget|forgotten|delete|erase|remove|wipe|clear)\b"
    r"|\bstop (remembering|keeping)\b|\bdon'?t (remember|keep)\b",
    re.IGNORECASE,
)
"""Words that ask for what is kept about the caller to go."""

FAREWELL: Final = re.compile(
    r"\b(good ?bye|bye|that'?s all|that is all|that will be all|that'?s it|that'?s everything"
    r"|nothing else|nothing more|no thanks|no thank you|thanks|thank you|cheers|hang up|see you"
    r"|have a (good|nice)|i'?m done|i am done|i'?m good|all set|take care)\b",
    re.IGNORECASE,
)
"""Words a caller closes a call with."""


def caller_asked(context: ToolContext, words: re.Pattern[str], *, turns: int = 1) -> bool:
    """Whether the caller's last `turns` turns of this call contain `words`."""
    return any(words.search(text) for text in context.said(turns))
