"""Tools about the call itself."""

from __future__ import annotations

from pydantic import BaseModel

from appliance.conversation.tools import Tool, ToolContext

__all__ = ["end_call"]


class _NoArguments(BaseModel):
    pass


async def _end_call(_: BaseModel, context: ToolContext) -> str:
    context.hang_up_after_reply = True
    return "The call will end after your goodbye."


end_call = Tool(
    name="end_call",
    description="Hang up after saying goodbye, when the caller is finished or says goodbye.",
    arguments=_NoArguments,
    run=_end_call,
)
