"""Handing a caller to a person: what the agent says around it, and asking the line to do it.

The session hands a caller over once a reply that set `ToolContext.transfer_to` (the hand-off
tool ran) has been heard, or once "I'll put you through to ..." has been heard after the caller
pressed 0. If the line cannot (nobody answered, the trunk refused, the line has no way), the
caller is told and their next turn is taken down as a message for that person.
"""

from __future__ import annotations

import logging

from appliance.conversation.ports import CallLine, Handoff, Transferable, TransferError

__all__ = ["cannot_transfer", "hand_off", "message_taken", "not_answering", "put_through"]

_log = logging.getLogger(__name__)


def put_through(who: str) -> str:
    return f"I'll put you through to {who}."


def not_answering(who: str) -> str:
    return (
        f"I'm sorry, {who} can't take your call right now. "
        "If you'd like to leave a message, tell me now and I'll pass it on."
    )


def message_taken(who: str) -> str:
    return f"Thank you, I'll pass your message on to {who}. Is there anything else?"


def cannot_transfer() -> str:
    return "I'm sorry, I can't put you through to anyone on this line."


async def hand_off(line: CallLine, handoff: Handoff) -> str | None:
    """Ask `line` to hand the caller to `handoff`'s person; None once they have the call,
    otherwise why not (the call goes on)."""
    if not isinstance(line, Transferable):
        return "this line cannot transfer calls"
    try:
        await line.transfer(handoff)
    except TransferError as exc:
        _log.warning("the hand-off to %s failed: %s", handoff.who, exc)
        return str(exc)
    _log.info("the caller was handed to %s", handoff.who)
    return None
