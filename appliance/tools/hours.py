"""Opening hours, answered from the business profile in code (the model only passes the day).

Where the model's day is a part of what the caller said, the caller's own words decide: asked
"What are your hours on Christmas Eve?", the 1.5B passed "christmas", which is another day.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from appliance.clock import Clock
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import Tool, ToolContext

__all__ = ["opening_hours"]


class _Day(BaseModel):
    day: str | None = Field(
        default=None,
        description=(
            'The day the caller asks about, in their words: "today", "tomorrow", "saturday", '
            '"next monday", "christmas", or a date like "2026-12-25". Leave it out for right now.'
        ),
    )


def opening_hours(profile: BusinessProfile, clock: Clock) -> Tool:
    """A tool that says the business's hours on a day, or whether it is open now."""

    async def run(arguments: BaseModel, context: ToolContext) -> str:
        assert isinstance(arguments, _Day)
        now = profile.local(clock.wall())
        asked = (arguments.day or "").strip()
        if not asked:
            return f"{profile.say_now(now)} {profile.say_hours(now.date(), now)}"
        said = "".join(context.said(1))
        heard = profile.resolve_day(said, now) if asked.lower() in said.lower() else None
        day = heard or profile.resolve_day(asked, now)
        if day is None:
            return (
                f'"{asked}" is not a day that can be worked out; ask the caller which day '
                "of the week or which date they mean."
            )
        return profile.say_hours(day, now)

    return Tool(
        name="opening_hours",
        description="When the business is open on a given day, or whether it is open right now.",
        arguments=_Day,
        run=run,
    )
