"""The tool registry: what the language model may call, with arguments checked before anything runs.

A tool is a name, a description, a pydantic model of its arguments (its JSON Schema is what the
model sees) and an async function. The registry parses the model's JSON, validates it, runs the
tool with a timeout and turns every failure into text the model can read.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from pydantic import BaseModel, ValidationError

from appliance.conversation.ports import CallInfo, Handoff, ToolCall, ToolSpec

__all__ = [
    "DAY_S",
    "TRANSFER_TOOL",
    "Awaiting",
    "CallerTally",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolPolicy",
    "ToolRegistry",
]

TRANSFER_TOOL = "transfer_to_person"
"""The hand-off tool's name: the session runs it itself when the caller presses 0."""


class ToolArgumentsError(ValueError):
    """The model's tool call cannot be run as written; the message is written for the model."""


@dataclass(slots=True)
class ToolContext:
    """What a tool may know about, and ask of, the call it runs in."""

    call: CallInfo
    hang_up_after_reply: bool = False
    """Set by the end-of-call tool: the session hangs up once this reply has been heard."""
    transfer_to: Handoff | None = None
    """Set by the hand-off tool: the session hands the caller over once this reply is heard."""
    caller_said: dict[int, str] = field(default_factory=dict)
    """What the caller said in each turn so far, by turn number (for a hand-off's summary)."""
    notes: dict[str, str] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    """How many times each tool has run on this call (for `ToolPolicy`)."""
    awaiting: Awaiting | None = None
    """A tool call read back to the caller, waiting for their yes (see `Tool.readback`)."""

    def said(self, last: int | None = None) -> list[str]:
        """What the caller said, turn by turn in order; only the `last` turns when given."""
        turns = sorted(self.caller_said)
        return [self.caller_said[turn] for turn in (turns if last is None else turns[-last:])]


ToolFn = Callable[[BaseModel, ToolContext], Awaitable[str]]
Readback = Callable[[BaseModel, ToolContext], str | Awaitable[str | None] | None]


@dataclass(frozen=True, slots=True)
class Awaiting:
    """A call of a tool with a side effect, read back to the caller, not yet run."""

    call: ToolCall
    arguments: BaseModel
    readback: str


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    run: ToolFn
    timeout_s: float = 10.0
    readback: Readback | None = None
    """For a tool with a side effect (a message sent, a booking made): what to read back to the
    caller before it runs ("I'll text our address to ..., shall I send it?"). Such a tool runs
    only when the caller's next turn says yes (`think.py`); no read-back (None, or None for
    these arguments, where nothing would happen): it runs when called. It may be async, for a
    read-back that must look something up (a booking's free slot, which appointment a
    cancellation is of)."""

    @property
    def spec(self) -> ToolSpec:
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)


_RESERVED_ARGUMENTS: Final = frozenset({"name"})
"""Argument names a model confuses with its own call format (Qwen's `{"name": <tool>, ...}`):
forced to fill a tool's `name`, both Qwen2.5-Coder models wrote the tool's name into it."""


_PER_CALL: Final = {
    TRANSFER_TOOL: 2,
    "forget_me": 1,
    "end_call": 2,
    "what_you_remember": 2,
    "text_the_caller": 2,
    "get_weather": 4,
    "book_appointment": 2,
    "move_appointment": 2,
    "cancel_appointment": 2,
}
"""How often a tool may run on one call; others run at most `ToolPolicy.default_per_call`."""

_PER_CALLER_PER_DAY: Final = {
    TRANSFER_TOOL: 6,
    "forget_me": 2,
    "text_the_caller": 3,
    "book_appointment": 3,
    "move_appointment": 3,
    "cancel_appointment": 3,
}
"""How often a tool with a side effect may run for one caller over 24 hours, across calls: a
caller who rings back cannot undo the per-call limit (a texting loop one call at a time)."""

DAY_S: Final = 24 * 3600.0


class CallerTally:
    """When each caller's tools ran, over the last `window_s` (in this process: a restart
    forgets it, which a caller on the phone cannot cause)."""

    def __init__(self, now: Callable[[], float], window_s: float = DAY_S) -> None:
        self._now = now
        self._window_s = window_s
        self._runs: dict[tuple[str, str], deque[float]] = {}

    def add(self, caller: str, tool: str) -> None:
        self._runs.setdefault((_caller_key(caller), tool), deque()).append(self._now())

    def count(self, caller: str, tool: str) -> int:
        key = (_caller_key(caller), tool)
        runs = self._runs.get(key)
        if runs is None:
            return 0
        since = self._now() - self._window_s
        while runs and runs[0] < since:
            runs.popleft()
        if not runs:
            del self._runs[key]
        return len(runs)


def _caller_key(caller: str) -> str:
    """Callers with no number share one tally: withholding it must not lift the limit."""
    return caller.strip() or "anonymous"


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """What every tool call must pass before it runs: rules in code, never a model's judgement.

    A caller's words reach the model only after the safety screen (`guard.py`), and a tool acts
    only on its own arguments, checked by pydantic and by the tool itself (a transfer only to
    someone in the business profile, `forget_me` only on the caller's own words). On top, each
    tool runs a bounded number of times per call: a model talked into a loop cannot flood a
    person with hand-offs, nor run up a weather API's bill."""

    per_call: Mapping[str, int] = field(default_factory=lambda: dict(_PER_CALL))
    default_per_call: int = 6
    denied: frozenset[str] = frozenset()
    """Tools the business does not allow, though registered."""
    transfer_targets: frozenset[str] | None = None
    """The only numbers and SIP URIs a caller may be put through to (the business profile's
    people and the escalation number; an empty target is the line's own escalation number,
    always allowed); None: whatever the hand-off tool chose."""
    per_caller_per_day: Mapping[str, int] = field(default_factory=lambda: dict(_PER_CALLER_PER_DAY))
    tally: CallerTally = field(default_factory=lambda: CallerTally(time.monotonic))
    """When each caller's tools ran, across calls (see `per_caller_per_day`)."""

    def transfer_refusal(self, target: str) -> str | None:
        """Why a caller may not be put through to `target`, or None when they may."""
        if self.transfer_targets is not None and target and target not in self.transfer_targets:
            return f"{target} is not one of the business's people"
        return None

    def refusal(self, call: ToolCall, context: ToolContext) -> str | None:
        """Why `call` may not run now (written for the model), or None when it may."""
        if call.name in self.denied:
            return f"{call.name} is not allowed here"
        limit = self.per_call.get(call.name, self.default_per_call)
        if context.runs.get(call.name, 0) >= limit:
            return (
                f"{call.name} has run as often as it may on one call ({limit}); answer without it"
            )
        daily = self.per_caller_per_day.get(call.name)
        if daily is not None and self.tally.count(context.call.caller, call.name) >= daily:
            return (
                f"{call.name} has run as often as it may for this caller today ({daily}); "
                "answer without it"
            )
        return None

    def ran(self, call: ToolCall, context: ToolContext) -> None:
        """`call` ran on `context`'s call: it counts against the call's and the caller's limits."""
        context.runs[call.name] = context.runs.get(call.name, 0) + 1
        if call.name in self.per_caller_per_day:
            self.tally.add(context.call.caller, call.name)


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = (), *, policy: ToolPolicy | None = None) -> None:
        """Raises ValueError for a tool with an argument the models confuse (`name`: call it
        `caller_name`, `person`...)."""
        self.policy = policy or ToolPolicy()
        self._tools = {tool.name: tool for tool in tools}
        for tool in self._tools.values():
            clashes = _RESERVED_ARGUMENTS & set(
                tool.arguments.model_json_schema().get("properties", {})
            )
            if clashes:
                raise ValueError(
                    f"tool {tool.name!r} has an argument called {sorted(clashes)[0]!r}, which "
                    "the model confuses with the tool's own name; call it something else "
                    "(caller_name, person, ...)"
                )

    def specs(self) -> Sequence[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def parse(self, call: ToolCall) -> BaseModel:
        """The call's arguments, validated; raises ToolArgumentsError saying what is wrong."""
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolArgumentsError(
                f"there is no tool named {call.name!r}; the tools are: {known}"
            )
        try:
            raw = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolArgumentsError(f"the arguments are not valid JSON ({exc.msg})") from exc
        if not isinstance(raw, dict):
            raise ToolArgumentsError("the arguments must be a JSON object")
        try:
            return tool.arguments.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolArgumentsError(f"the arguments do not fit {call.name}: {problems}") from exc

    async def readback(
        self, call: ToolCall, arguments: BaseModel, context: ToolContext
    ) -> str | None:
        """What to read back to the caller before `call` runs, or None if it needs no yes."""
        confirm = self._tools[call.name].readback
        said = confirm(arguments, context) if confirm is not None else None
        return await said if inspect.isawaitable(said) else said

    def refusal(self, call: ToolCall, context: ToolContext) -> str | None:
        """Why the policy will not let `call` run now, or None (see `ToolPolicy`)."""
        return self.policy.refusal(call, context)

    async def run(
        self, call: ToolCall, arguments: BaseModel, context: ToolContext
    ) -> tuple[bool, str]:
        """(ok, result text for the model); a failing or slow tool is reported, never raised.
        Check `refusal` first: this runs the tool."""
        tool = self._tools[call.name]
        self.policy.ran(call, context)
        try:
            async with asyncio.timeout(tool.timeout_s):
                return True, await tool.run(arguments, context)
        except TimeoutError:
            return False, f"error: {call.name} did not answer within {tool.timeout_s:.0f} seconds"
        except Exception as exc:
            return False, f"error: {call.name} failed: {exc}"
