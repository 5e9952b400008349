"""What a call's record says happened, in plain sentences, without asking a model.

A post-call summary once said "The assistant texted a summary" of a call where nothing was
sent: the model read the agent's "I'll text you" as a deed. So the parts of a summary that say
what the agent did are written here, from the call's record: which caller turns it answered
(or that it never answered), the tools that ran and whether each worked, messages a tool sent,
transfers and how the call ended. The model is asked only what the caller wanted (`notes`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.memory.actions import ActionRecord
from appliance.memory.calls import TurnRecord

__all__ = ["Happened", "what_happened"]

_MESSAGE_TOOL = re.compile(r"(?:^|_)(?:sms|text|e?mail|message)s?(?:_|$)", re.IGNORECASE)
"""A tool whose name says it sends a message (send_sms, email_summary, text_caller ...)."""
_MESSAGE_TALK = re.compile(r"\b(?:text|texts|texted|sms|e-?mail|emailed|message)\b", re.I)


@dataclass(frozen=True, slots=True)
class Happened:
    caller_turns: int
    """Turns in which the caller said something."""
    answered: int
    """Of those, how many the agent answered with words the caller heard."""
    tools: tuple[ActionRecord, ...]
    transfers: tuple[str, ...]
    """Targets of the transfers the agent asked of the line."""
    hung_up: str | None
    """Why the agent hung up, if it did."""
    outcome: str | None
    """Why the call ended (the call's row)."""
    message_talk: bool
    """Someone on the call spoke of a text or an email."""

    @property
    def messages_sent(self) -> tuple[ActionRecord, ...]:
        """The message tools that ran and sent: the only messages the summary may say were
        sent. A run that says "Not sent" sent nothing (a withheld number; a transcript the
        caller will be texted by a post-call job, once the call has ended)."""
        return tuple(
            t
            for t in self.tools
            if t.ok and _MESSAGE_TOOL.search(t.name) and not t.result.startswith("Not sent")
        )

    def sentences(self) -> list[str]:
        """The record, as sentences for a summary."""
        told = [self._answers(), self._tools(), self._messages(), *self._transfers()]
        told.append(self._ending())
        return [sentence for sentence in told if sentence]

    def _answers(self) -> str:
        if self.caller_turns == 0:
            return "The caller said nothing."
        if self.answered == 0:
            return "The agent never answered: the caller heard no reply to what they said."
        missed = self.caller_turns - self.answered
        if missed > 0:
            return f"The agent did not answer {missed} of the caller's {self.caller_turns} turns."
        return ""

    def _tools(self) -> str:
        if not self.tools:
            return ""
        runs = [f"{t.name} ({_state(t.ok)})" for t in self.tools]
        return f"Tools run: {', '.join(runs)}."

    def _messages(self) -> str:
        sent = self.messages_sent
        if sent:
            return f"Sent during the call: {', '.join(_sent(t) for t in sent)}."
        if self.message_talk:
            return "No text or email was sent during the call."
        return ""

    def _transfers(self) -> list[str]:
        through = self.outcome is not None and "transfer" in self.outcome.lower()
        return [
            f"The call was transferred to {target}."
            if through
            else f"A transfer to {target} was tried."
            for target in self.transfers
        ]

    def _ending(self) -> str:
        if self.hung_up is not None:
            return f"The agent ended the call ({self.hung_up})."
        if self.outcome is None:
            return ""
        if self.outcome == "caller hung up":
            return ""  # the usual ending says nothing about the call
        return f"The call ended: {self.outcome}."


def _state(ok: bool | None) -> str:
    return "did not finish" if ok is None else "ok" if ok else "failed"


def _sent(tool: ActionRecord) -> str:
    result = " ".join(tool.result.split())
    return f"{tool.name} ({result[:80]})" if result else tool.name


def what_happened(
    turns: Sequence[TurnRecord], actions: Sequence[ActionRecord], outcome: str | None
) -> Happened:
    """What the record of a call says happened on it."""
    asked = {t.turn for t in turns if t.speaker == "caller" and t.turn > 0 and t.text.strip()}
    heard = {t.turn for t in turns if t.speaker == "agent" and t.turn > 0 and t.text.strip()}
    hang_ups = [a.name for a in actions if a.kind == "hangup"]
    return Happened(
        caller_turns=len(asked),
        answered=len(asked & heard),
        tools=tuple(a for a in actions if a.kind == "tool"),
        transfers=tuple(a.name for a in actions if a.kind == "transfer"),
        hung_up=hang_ups[-1] if hang_ups else None,
        outcome=outcome,
        message_talk=any(_MESSAGE_TALK.search(t.text) for t in turns),
    )
