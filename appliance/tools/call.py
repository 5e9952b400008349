"""Tools about the call itself."""

from __future__ import annotations

from pydantic import BaseModel

from appliance.conversation.tools import Tool, ToolContext
from appliance.tools.asked import FAREWELL, caller_asked

__all__ = ["end_call"]


class _NoArguments(BaseModel):
    pass


async def _end_call(_: BaseModel, context: ToolContext) -> str:
    if not caller_asked(context, FAREWELL):
        # Hanging up cannot be undone: only on the caller's own closing words (`asked`).
        return "Not done: the caller has not said goodbye, so the call goes on. Answer them."
    context.hang_up_after_reply = True
    return "Say goodbye."


end_call = Tool(
    name="end_call",
    description="Hang up after saying goodbye, when the caller is finished or says goodbye.",
    arguments=_NoArguments,
    run=_end_call,
)
