"""The conversation so far, bounded, as the language model will see it.

The system messages stay; the oldest exchanges go first when there are more than `max_turns`
caller turns or more than `max_chars` of text (a proxy for the model's context). History is only
ever trimmed at the start of a caller turn, so a tool result never loses the call it answers.

A call's own context (what the agent knows about this caller) goes after the system prompt and
the agent's opening words, not before them: every call's prompt then begins with the same
tokens, and llama.cpp reuses its cache of them instead of evaluating them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.conversation.ports import Message

__all__ = ["History"]


class History:
    def __init__(
        self,
        system: Sequence[Message],
        *,
        max_turns: int,
        max_chars: int = 8000,
        context: Sequence[Message] = (),
    ) -> None:
        self._system = list(system)
        self._context = list(context)
        self._turns: list[list[Message]] = []
        self._max_turns = max_turns
        self._max_chars = max_chars

    def add(self, message: Message) -> None:
        """Append; a user message opens a new turn."""
        if message.role == "user" or not self._turns:
            self._turns.append([])
        self._turns[-1].append(message)
        self._trim()

    def messages(self, *extra: Message) -> list[Message]:
        """System messages, the opening, the call's context, the kept turns, then `extra`."""
        opening: list[Message] = []
        turns = self._turns
        if turns and turns[0][0].role != "user":
            opening, turns = turns[0], turns[1:]
        kept = (m for turn in turns for m in turn)
        return [*self._system, *opening, *self._context, *kept, *extra]

    def _trim(self) -> None:
        while len(self._turns) > self._max_turns:
            self._turns.pop(0)
        while len(self._turns) > 1 and self._chars() > self._max_chars:
            self._turns.pop(0)

    def _chars(self) -> int:
        return sum(
            len(m.content) + sum(len(c.arguments) for c in m.tool_calls)
            for t in self._turns
            for m in t
        )

    def __len__(self) -> int:
        return sum(len(turn) for turn in self._turns)
