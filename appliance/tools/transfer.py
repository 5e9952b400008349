"""Transfer to a person: the tool the model calls, and the summary that person is given.

`transfer_tool(people, default_target)` makes the `transfer_to_person` tool from the business
profile's people (anything with a `name`, a `role` and a `target`) and the escalation number.
Run, it picks who the caller asked for (or the default), writes a summary of the call from the
caller's own words, texts or emails it to that person when it can, and leaves a `Handoff` in the
call's `ToolContext`: the session hands the caller over once the reply ("I'll put you through to
...") has been heard. Asked for somebody nobody knows, it tells the model who can be reached.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from pydantic import BaseModel, Field

from appliance.conversation.ports import CallInfo, Handoff, Mailer, Texter
from appliance.conversation.profile import is_phone_number
from appliance.conversation.tools import TRANSFER_TOOL, Tool, ToolContext

__all__ = ["Reachable", "Summary", "call_summary", "transfer_tool"]

_log = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z0-9]+")
_FILLER: Final = frozenset({
    "a", "an", "the", "to", "with", "for", "of", "please", "person", "someone", "somebody",
    "human", "real", "people", "staff", "member", "speak", "talk", "put", "me", "through",
    "can", "i", "could", "you", "mr", "mrs", "ms", "dr",
})  # fmt: skip
"""Words that name nobody in particular ("the", "a person", "someone")."""
_SAID_CHARS: Final = 400
"""At most this much of what the caller said goes into a summary (the most recent words)."""
_SEND_TIMEOUT_S: Final = 4.0
"""The caller waits on the tool: a text or email slower than this is reported as not sent."""


class Reachable(Protocol):
    """Someone a caller can be put through to (the business profile's `Person` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def target(self) -> str:
        """An E.164 number or a SIP URI."""
        ...


@dataclass(frozen=True, slots=True)
class _Choice:
    who: str
    """As the caller hears it."""
    target: str


@dataclass(frozen=True, slots=True)
class Summary:
    """A call so far, for the person taking it: to be read and to be heard."""

    written: str
    spoken: str


class _Arguments(BaseModel):
    who: str = Field(
        default="",
        description="The person or department the caller asked for, in their words; "
        "empty when they want anyone who can help.",
    )


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) - _FILLER


def _choose(asked: str, people: Sequence[Reachable], default: _Choice | None) -> _Choice | None:
    """Who `asked` names: the person sharing most words with it; the default for nobody named;
    None when it names somebody we cannot reach."""
    wanted = _words(asked)
    if not wanted:
        return default
    best, overlap = None, 0
    for person in people:
        shared = len(wanted & _words(f"{person.name} {person.role}"))
        if shared > overlap:
            best, overlap = person, shared
    if best is None:
        return None
    return _Choice(who=best.name, target=best.target)


def _spoken_address(caller: str) -> str:
    """A number read digit by digit ("+1 5 5 5 ..."); anything else as it is."""
    if is_phone_number(caller):
        return " ".join(caller.removeprefix("+"))
    return caller


def call_summary(call: CallInfo, said: Sequence[str], who: str) -> Summary:
    """What the person taking the call is told: who calls, and what they said, in their words.

    Nothing is inferred: the caller's own recent words are quoted, so the summary cannot tell
    the person anything the caller did not say."""
    caller = call.caller or "an unknown number"
    words = " ".join(part.strip() for part in said if part.strip())
    if len(words) > _SAID_CHARS:
        words = "... " + words[-_SAID_CHARS:].split(" ", 1)[-1]
    told = f'They said: "{words}"' if words else "They have not said anything yet."
    return Summary(
        written=f"Call for {who} from {caller}. {told}",
        spoken=f"A call for {who} from {_spoken_address(caller)}. {told}",
    )


async def _send(what: str, work: Awaitable[str]) -> bool:
    """Run a send with a short budget; True when it went."""
    try:
        async with asyncio.timeout(_SEND_TIMEOUT_S):
            await work
    except Exception as exc:  # the hand-off goes on: the summary is a help, not a condition
        _log.warning("the hand-off summary was not %s: %r", what, exc)
        return False
    return True


def transfer_tool(
    people: Sequence[Reachable],
    default_target: str | None,
    *,
    default_who: str = "a member of staff",
    texter: Texter | None = None,
    mailer: Mailer | None = None,
    email_to: str | None = None,
) -> Tool:
    """The `transfer_to_person` tool over `people`; an empty `who` goes to `default_target`
    (ESCALATION_PHONE_NUMBER), or to the first person when there is none.

    The summary is texted to a person reached by number (`texter`) and emailed to `email_to`
    (`mailer`), when given."""
    reachable = tuple(people)
    default = (
        _Choice(who=default_who, target=default_target)
        if default_target
        else (_Choice(who=reachable[0].name, target=reachable[0].target) if reachable else None)
    )

    async def _deliver(choice: _Choice, text: str) -> list[str]:
        """Text the summary to the person, email it to the operator: how it went, in words."""
        sent = []
        by_text = texter if is_phone_number(choice.target) else None
        if by_text is not None and await _send("texted", by_text.send_sms(choice.target, text)):
            sent.append(f"texted to {choice.who}")
        if mailer is not None and email_to:
            subject = f"Call transferred to {choice.who}"
            if await _send("emailed", mailer.send_email(email_to, subject, text)):
                sent.append("emailed")
        return sent

    listed = "; ".join(f"{p.name} ({p.role})" for p in reachable) or default_who

    async def run(arguments: BaseModel, context: ToolContext) -> str:
        assert isinstance(arguments, _Arguments)
        if default is None:
            return (
                "Nobody can take calls on this line: tell the caller so and offer to take a "
                "message for the team instead."
            )
        choice = _choose(arguments.who, reachable, default)
        if choice is None:
            return (
                f"There is nobody called {arguments.who!r} to put the caller through to. "
                f"Who can be reached: {listed}. Ask the caller which of them they want."
            )
        summary = call_summary(context.call, context.said(), choice.who)
        sent = await _deliver(choice, summary.written)
        context.transfer_to = Handoff(target=choice.target, who=choice.who, summary=summary.spoken)
        note = f" A summary was {' and '.join(sent)}." if sent else ""
        return (
            f"Ready to put the caller through to {choice.who}.{note} Say only: "
            f'"I\'ll put you through to {choice.who}." The transfer starts once they hear it.'
        )

    return Tool(
        name=TRANSFER_TOOL,
        description="Put the caller through to a person when they ask for one (or for someone "
        f"by name or department). Who can be reached: {listed}.",
        arguments=_Arguments,
        run=run,
        timeout_s=15.0,
    )
