"""The two-stage tool route: a grammar picks the next action, then the chosen tool's arguments.

Small models chose badly when left to decide between text and a tool call on their own (Qwen2.5-
Coder-1.5B on a front-desk prompt: its likeliest first token was text for all 12 requests, 6 of
which needed a tool), and a single grammar over the whole reply made them call tools on plain
questions. Here the assistant's turn is opened as a tool call, `<tool_call>\\n{"name": "`, and the
model may write only `speak` or one tool's name: greedy decoding under that grammar, done by `pick`
on the logits of the few allowed tokens (a GBNF grammar sampler did the same at ~150-300 ms more a
turn: it checks all 151k tokens of the vocabulary at each step). `speak` is offered as a tool of
its own, listed first, described as answering in words: asked to name "speak" in a separate
question instead, the 1.5B named it for every request (6/12 right); as a listed tool, 11/12
(`bench/tool_route.py`).

A tool's result goes back to the model as the template writes it, `<tool_response>...`, with
one line after it asking for the answer in a sentence: without that line the 1.5B took the result
for the caller's words ("Thank you for letting me know.", "I'm sorry, but I can't assist with
that.") or read out the tags. After a result the reply is generated freely, with no forced
opening: forced to name an action there, the 0.5B named another tool after every result (0/6
spoke). Only when the model starts a call instead of words (the `<tool_call>` stop) does a
grammar pick among the tools not yet called since the caller last spoke, so it cannot loop.

After `speak` the reply is generated from the plain assistant header, so the action's tokens are
not in the reply and the next turn's prompt still extends the cached one. After a tool's name,
its arguments are generated under its JSON Schema (a closed object) after the rest of the call's
opening, `", "arguments": `, exactly as the chat template writes a call into the history.

The tool list (`speak` included) is built from the specs alone, so it is the same bytes on every
turn and llama.cpp's prefix cache holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from appliance.conversation.ports import Message, ToolSpec

__all__ = [
    "SPEAK",
    "arguments_opening",
    "arguments_schema",
    "call_opening",
    "called_this_turn",
    "pick",
    "result_for_model",
    "takes_arguments",
    "template_tools",
]

SPEAK: Final = ToolSpec(
    name="speak",
    description=(
        "Say something to the caller in words, with no other tool: greet them, answer from the "
        "facts above (the address, services, prices, people, common questions), or ask them a "
        "question."
    ),
    parameters={"type": "object", "properties": {}},
)
"""The action that answers in words; offered to the model as a tool, never run."""

_OPENING: Final = '<tool_call>\n{"name": "'
"""How the chat template (Qwen2.5's) starts a call in the assistant's turn."""
_ASK_TO_TELL: Final = "Tell the caller in one short sentence."


def template_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tools as the chat template lists them, `speak` first; empty when there are none."""
    if not tools:
        return []
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        }
        for tool in (SPEAK, *tools)
    ]


def call_opening() -> str:
    """The prompt suffix after which the model names its action."""
    return _OPENING


def arguments_opening(tool: str) -> str:
    """The prompt suffix after which the model writes `tool`'s arguments object."""
    return f'{_OPENING}{tool}", "arguments": '


def pick(
    spellings: Mapping[str, Sequence[int]],
    logit: Callable[[int], float],
    advance: Callable[[int], None],
) -> str:
    """The action that greedy decoding constrained to `spellings` writes, read off the logits.

    `spellings` are the actions' tokens; `logit` scores a token at the current position and
    `advance` evaluates the chosen one. Only the few allowed tokens are scored (a grammar
    sampler checks the whole vocabulary, 151k tokens, at every step), and decoding stops as
    soon as one action is left: `speak` costs no step beyond the prompt.
    """
    left = list(spellings)
    step = 0
    while len(left) > 1:
        allowed = sorted({spellings[a][step] for a in left if len(spellings[a]) > step})
        best = max(allowed, key=logit)
        left = [a for a in left if len(spellings[a]) > step and spellings[a][step] == best]
        step += 1
        if len(left) > 1:
            advance(best)
    return left[0]


def called_this_turn(messages: Iterable[Message]) -> set[str]:
    """The tools called since the caller last spoke."""
    called: set[str] = set()
    for message in reversed(list(messages)):
        if message.role == "user":
            break
        called.update(call.name for call in message.tool_calls)
    return called


def result_for_model(result: str) -> str:
    """A tool's result as the user-side text the model reads it in."""
    return f"<tool_response>\n{result}\n</tool_response>\n{_ASK_TO_TELL}"


def takes_arguments(tool: ToolSpec) -> bool:
    """Whether the tool has any argument to fill (if not, stage 2 is skipped)."""
    properties = tool.parameters.get("properties")
    return isinstance(properties, Mapping) and bool(properties)


def arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's arguments as a closed object: an open one lets a small model ramble inside
    the arguments until max_tokens (seconds, under a grammar)."""
    return {"type": "object", **tool.parameters, "additionalProperties": False}
