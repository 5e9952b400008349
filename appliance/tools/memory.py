"""Tools that tell a caller what is remembered about them, and forget it when they ask.

The memory itself lives in `appliance.memory` (a sibling layer this one does not import); these
tools see it through `CallerMemoryStore`, which the composition root fills with
`Records.kept`. Neither tool takes an argument: the caller is the call's own number
(`ToolContext.call.caller`), so no one can ask about, or erase, another caller. Recordings and
transcripts are the business's records, not memory: they stay, and the tools say so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel

from appliance.conversation.tools import Tool, ToolContext
from appliance.tools.asked import FORGET, caller_asked

__all__ = ["CallerMemoryStore", "Kept", "Removed", "forget_me", "what_you_remember"]

_RECORDS_STAY = (
    "Recordings and transcripts of their calls are kept by the business separately, and stay "
    "unless its operator deletes them."
)
_UNVOUCHED = (
    "Not done: this line cannot confirm the caller's number, so what is remembered about it "
    "is neither told nor changed on this call. The business can help them in person."
)
_WITHHELD = "The caller's number is withheld, so nothing is remembered about them."
_SUMMARIES = 3
_SUMMARY_CHARS = 200


class Kept(Protocol):
    """What is remembered about one caller."""

    @property
    def name(self) -> str | None: ...
    @property
    def facts(self) -> Sequence[str]: ...
    @property
    def summaries(self) -> Sequence[tuple[float, str]]:
        """(when the call began, Unix seconds; its summary), newest first."""
        ...


class Removed(Protocol):
    """What forgetting a caller removed."""

    @property
    def name(self) -> bool: ...
    @property
    def facts(self) -> int: ...
    @property
    def summaries(self) -> int: ...


class CallerMemoryStore(Protocol):
    async def kept_about(self, number: str) -> Kept | None:
        """None when the number cannot be remembered (withheld)."""
        ...

    async def forget(self, number: str) -> Removed | None:
        """None when the number cannot be remembered (withheld)."""
        ...


class _NoArguments(BaseModel):
    pass


def _day(started: float, timezone: dt.tzinfo | None) -> str:
    return dt.datetime.fromtimestamp(started, tz=timezone).strftime("%B %-d")


def _told(kept: Kept, timezone: dt.tzinfo | None) -> str:
    parts = []
    if kept.name:
        parts.append(f"Their name: {kept.name}.")
    if kept.facts:
        parts.append(f"Notes: {'; '.join(kept.facts)}.")
    for started, summary in list(kept.summaries)[:_SUMMARIES]:
        text = summary if len(summary) <= _SUMMARY_CHARS else summary[: _SUMMARY_CHARS - 1] + "…"
        parts.append(f"Call on {_day(started, timezone)}: {text}")
    if not parts:
        return f"Nothing is remembered about this caller from earlier calls. {_RECORDS_STAY}"
    return (
        "Remembered about this caller from earlier calls: "
        + " ".join(parts)
        + f" They can ask for this to be forgotten. {_RECORDS_STAY}"
    )


def what_you_remember(store: CallerMemoryStore, timezone: dt.tzinfo | None = None) -> Tool:
    """A tool that tells what is remembered about the caller (by their number)."""

    async def run(_: BaseModel, context: ToolContext) -> str:
        if not context.call.vouched:
            return _UNVOUCHED
        kept = await store.kept_about(context.call.caller)
        return _WITHHELD if kept is None else _told(kept, timezone)

    return Tool(
        name="what_you_remember",
        description="What is remembered about the caller from their earlier calls, for when "
        "they ask what you know or keep about them.",
        arguments=_NoArguments,
        run=run,
    )


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def forget_me(store: CallerMemoryStore) -> Tool:
    """A tool that forgets what is remembered about the caller (by their number)."""

    async def run(_: BaseModel, context: ToolContext) -> str:
        if not caller_asked(context, FORGET, turns=2):
            # Forgetting cannot be undone: only on the caller's own words (`asked`).
            return (
                "Not done: the caller did not ask to be forgotten, so nothing was deleted. "
                "Answer what they said."
            )
        if not context.call.vouched:
            return _UNVOUCHED
        removed = await store.forget(context.call.caller)
        if removed is None:
            return f"{_WITHHELD} {_RECORDS_STAY}"
        gone = [
            *(["their name"] if removed.name else []),
            *([_count(removed.facts, "note", "notes")] if removed.facts else []),
            *(
                [_count(removed.summaries, "call summary", "call summaries")]
                if removed.summaries
                else []
            ),
        ]
        done = f"Forgotten: {', '.join(gone)}. " if gone else "Nothing was remembered to forget. "
        return (
            done
            + "Nothing from this call or earlier ones will be remembered on later calls. "
            + _RECORDS_STAY
        )

    return Tool(
        name="forget_me",
        description="Forget everything remembered about the caller, only when they ask to be "
        "forgotten or for their details to be deleted.",
        arguments=_NoArguments,
        run=run,
    )
