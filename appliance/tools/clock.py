"""The time and date where the box is."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from appliance.clock import Clock
from appliance.conversation.tools import Tool, ToolContext

__all__ = ["current_time"]


class _NoArguments(BaseModel):
    pass


def current_time(clock: Clock, timezone: dt.tzinfo | None = None) -> Tool:
    """A tool that tells the local time and date, read from `clock`."""

    async def run(_: BaseModel, __: ToolContext) -> str:
        now = dt.datetime.fromtimestamp(clock.wall(), tz=timezone).astimezone(timezone)
        return now.strftime("It is %-I:%M %p on %A, %B %-d, %Y.")

    return Tool(
        name="get_current_time",
        description="The current local time and date.",
        arguments=_NoArguments,
        run=run,
    )
