"""Texting the caller the business's address or phone number, read back before it is sent.

What is texted comes from the business profile, never from the model, and goes only to the
number the caller is calling from: the model chooses what, never where or what it says. A text
costs money and cannot be unsent, so the tool has a read-back ("I'll text our address to the
number you're calling from, ending in 0123. Shall I send it?") and runs only on the caller's
yes in their next turn (`think.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from appliance.conversation.ports import Texter
from appliance.conversation.profile import BusinessProfile, is_phone_number
from appliance.conversation.tools import Tool, ToolContext

__all__ = ["text_the_caller"]

_Kind = Literal["address", "phone number"]


class _What(BaseModel):
    what: _Kind = Field(description="What to text the caller: our address or our phone number.")


def _facts(profile: BusinessProfile) -> dict[str, str]:
    return {
        kind: value
        for kind, value in (("address", profile.address), ("phone number", profile.phone))
        if value
    }


def text_the_caller(profile: BusinessProfile, texter: Texter) -> Tool | None:
    """The tool, or None when the profile has neither an address nor a phone number."""
    facts = _facts(profile)
    if not facts:
        return None

    def readback(arguments: BaseModel, context: ToolContext) -> str | None:
        assert isinstance(arguments, _What)
        number = context.call.caller
        if arguments.what not in facts or not is_phone_number(number):
            return None  # nothing would be sent: no read-back, the tool says why
        return (
            f"I'll text our {arguments.what} to the number you're calling from, ending in "
            f"{' '.join(number[-4:])}. Shall I send it?"
        )

    async def run(arguments: BaseModel, context: ToolContext) -> str:
        assert isinstance(arguments, _What)
        number = context.call.caller
        if arguments.what not in facts:
            return f"Not sent: the business has no {arguments.what} to give."
        if not is_phone_number(number):
            return "Not sent: the caller's number is withheld, so there is nowhere to text it."
        sent = await texter.send_sms(number, f"{profile.name}: {facts[arguments.what]}")
        return f"Sent: our {arguments.what} was texted to the caller ({sent})."

    return Tool(
        name="text_the_caller",
        description="Text the caller our address or phone number, when they ask for it by "
        "text message.",
        arguments=_What,
        run=run,
        readback=readback,
    )
