"""The think stage: the model's reply text, with its tool calls run and their results fed back.

`Mind` is what thinks for the whole call (the model, its tools, the apology for when it cannot);
`Prompt` is one turn's question with the turn's hooks. What `think` did besides writing text
(the tool messages to keep, when the model started and first answered) goes in a `Thought`, the
stage's own record, read once the reply is over.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from pydantic import BaseModel

from appliance.clock import Clock
from appliance.conversation.confirm import answer_to_readback
from appliance.conversation.ports import LanguageModel, Message, TextDelta, ToolCall
from appliance.conversation.streams import closing, engine_of
from appliance.conversation.tools import Awaiting, ToolArgumentsError, ToolContext, ToolRegistry
from appliance.conversation.voice import Priority

__all__ = ["MAX_TOOL_ROUNDS", "Mind", "Prompt", "Thought", "ToolObserver", "think"]

MAX_TOOL_ROUNDS: Final = 3

ToolObserver = Callable[[ToolCall, bool | None, str], None]
"""Told of each tool call: `ok` None when it is asked for (or rejected, with the problem), then
True/False with the result once it has run."""


def _ignore(call: ToolCall, ok: bool | None, result: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Mind:
    """What thinks for a call."""

    llm: LanguageModel
    tools: ToolRegistry
    context: ToolContext
    apology: str
    """Said when the model cannot make a tool call work."""
    clock: Clock


@dataclass(frozen=True, slots=True)
class Prompt:
    """One turn's question, and how the turn wants to hear of the tools."""

    messages: Sequence[Message]
    may_act: Callable[[], Awaitable[object]]
    """Returns once tools may run: a speculative reply must not act on a turn the caller has
    not finished."""
    on_tool: ToolObserver = _ignore
    on_blocked: Callable[[ToolCall, str], None] = lambda call, why: None
    """Told of a tool call the policy did not let run, and why."""
    on_readback: Callable[[ToolCall, str], None] = lambda call, text: None
    """Told of a tool call read back to the caller, with what they hear."""
    priority: Priority | None = None


@dataclass(slots=True)
class Thought:
    """What `think` did besides producing text."""

    messages: list[Message] = field(default_factory=list)
    """The tool calls and results, for the history."""
    tools_run: list[tuple[str, bool]] = field(default_factory=list)
    fell_back_to_apology: bool = False
    started_at: float | None = None
    """When the model was first asked (clock seconds)."""
    first_output_at: float | None = None
    """When the model first answered, with text or a tool call (clock seconds)."""
    engines: list[str] = field(default_factory=list)
    """The engine that answered each time the model was asked (a fallback's, or the model)."""


_call_ids = itertools.count(1)


def _note_engine(thought: Thought, question: int, outputs: object, model: str) -> None:
    """The engine that answered the model's `question`-th question this turn (known once its first
    output has come: a chain may yet fall back before)."""
    if len(thought.engines) <= question:
        thought.engines.append(engine_of(outputs, model))


async def think(mind: Mind, prompt: Prompt, thought: Thought) -> AsyncIterator[str]:
    """The model's reply text; tool calls are run and their results fed back, up to 3 rounds.

    A tool call that cannot be parsed or validated gets one repair attempt: the model is told
    what was wrong and asked again. If the second attempt fails too, the caller hears the
    apology. No tool runs before `prompt.may_act` returns.
    """
    conversation = list(prompt.messages)
    repaired = False
    wrote = False
    thought.started_at = mind.clock.now()
    if mind.context.awaiting is not None:
        conversation += await _answered(mind, prompt, thought)
    for question in range(MAX_TOOL_ROUNDS):
        call: ToolCall | None = None
        if wrote:
            yield "\n"  # what the model says after a tool result starts a new sentence
        async with closing(mind.llm.stream(conversation, mind.tools.specs())) as outputs:
            async for output in outputs:
                _note_engine(thought, question, outputs, mind.llm.name)
                if prompt.priority is not None:
                    await prompt.priority.wait()
                if thought.first_output_at is None:
                    thought.first_output_at = mind.clock.now()
                if isinstance(output, TextDelta):
                    wrote = True
                    yield output.text
                else:
                    call = output
                    break
        if call is None:
            return
        call = ToolCall(
            id=call.id or f"call_{next(_call_ids)}", name=call.name, arguments=call.arguments
        )
        asked = Message(role="assistant", content="", tool_calls=(call,))
        try:
            arguments = mind.tools.parse(call)
        except ToolArgumentsError as problem:
            prompt.on_tool(call, None, str(problem))
            if repaired:
                thought.fell_back_to_apology = True
                yield mind.apology
                return
            repaired = True
            answer = Message(
                role="tool",
                content=f"error: {problem}. Call the tool again with valid JSON arguments, "
                "or answer without it.",
                tool_call_id=call.id,
            )
            conversation += [asked, answer]
            continue
        await prompt.may_act()
        ok, result, readback = await _act(mind, prompt, call, arguments)
        answer = Message(role="tool", content=result, tool_call_id=call.id)
        conversation += [asked, answer]
        thought.messages += [asked, answer]
        if readback is not None:  # the caller hears it, and it runs on their yes, next turn
            yield ("\n" if wrote else "") + readback
            return
        thought.tools_run.append((call.name, ok))
    thought.fell_back_to_apology = True
    yield mind.apology


async def _act(
    mind: Mind, prompt: Prompt, call: ToolCall, arguments: BaseModel
) -> tuple[bool, str, str | None]:
    """Run `call` if the policy lets it: (ok, the result for the model, and for a tool with a
    side effect, the read-back to say instead of running it)."""
    refused = mind.tools.refusal(call, mind.context)
    if refused is not None:
        prompt.on_blocked(call, refused)
        return False, f"Not allowed: {refused}.", None
    prompt.on_tool(call, None, "")
    readback = await mind.tools.readback(call, arguments, mind.context)
    if readback is not None:
        mind.context.awaiting = Awaiting(call, arguments, readback)
        prompt.on_readback(call, readback)
        waiting = f"Not done yet: read back to the caller, waiting for their yes: {readback}"
        return False, waiting, readback
    ok, result = await mind.tools.run(call, arguments, mind.context)
    prompt.on_tool(call, ok, result)
    return ok, result, None


_AFTER_NO: Final = (
    'acknowledge the no in a few words ("Okay, I won\'t."), answer anything else they said, '
    "and ask if there is anything else."
)
"""Told only "answer what the caller said", the 1.5B model repeated the caller ("No thanks, I
have changed my mind." was answered "I have changed my mind."); told "say it was not done", it
apologised as if refused ("I'm sorry, but I can't book your appointment.")."""
_AFTER_OTHER: Final = "answer what the caller said."


async def _answered(mind: Mind, prompt: Prompt, thought: Thought) -> list[Message]:
    """The call read back last turn, run if this turn's words say yes (and dropped otherwise):
    the tool call and its result, for the model to tell the caller what happened."""
    await prompt.may_act()  # the caller's turn is over: their words are final
    awaiting, mind.context.awaiting = mind.context.awaiting, None
    assert awaiting is not None
    said = next((m.content for m in reversed(prompt.messages) if m.role == "user"), "")
    call = replace(awaiting.call, id=f"call_{next(_call_ids)}")
    refused = mind.tools.refusal(call, mind.context)
    answer = answer_to_readback(said)
    if refused is None and answer != "yes":
        refused = f"the caller did not say yes to: {awaiting.readback}"
    if refused is not None:
        prompt.on_blocked(call, refused)
        then = _AFTER_NO if answer == "no" else _AFTER_OTHER
        result = f"Not done: {refused}. Nothing was done; {then}"
        ok = False
    else:
        prompt.on_tool(call, None, "")
        ok, result = await mind.tools.run(call, awaiting.arguments, mind.context)
        prompt.on_tool(call, ok, result)
    thought.tools_run.append((call.name, ok))
    asked = Message(role="assistant", content="", tool_calls=(call,))
    done = [asked, Message(role="tool", content=result, tool_call_id=call.id)]
    thought.messages += done
    return done
