"""The language model in process with llama-cpp-python: streamed text, constrained tool calls.

Text streams token by token. The model announces a tool call by starting its output with JSON or
`<tool_call>`; at that point free generation stops and the call is generated again under a
grammar built from the tools' JSON Schemas, so what comes back names a real tool and has
arguments of the right shape (measured: Qwen2.5-Coder-0.5B gets the shape right unconstrained
most of the time, not always).

Prompts are rendered with the model's own chat template. llama.cpp keeps the KV cache of the last
prompt; each turn's prompt extends the previous one (same system prompt, same history), so only
the new tokens are evaluated. `last_prompt` reports both counts; `warm_up` evaluates the system
prompt before the first call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.conversation.ports import (
    EngineError,
    LlmOutput,
    Message,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from appliance.engines.offload import Offloader

__all__ = ["LlamaLanguageModel", "PromptStats"]

_TOOL_TAG = "<tool_call>"
_STOP = ["<|im_end|>", "<|endoftext|>", "</tool_call>"]


@dataclass(frozen=True, slots=True)
class PromptStats:
    tokens: int
    """Tokens in the whole prompt."""
    evaluated: int
    """Tokens that had to be evaluated (the rest came from the KV cache)."""


def _as_template_message(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        calls = []
        for call in message.tool_calls:
            try:
                arguments: Any = json.loads(call.arguments)
            except json.JSONDecodeError:
                arguments = call.arguments
            calls.append(
                {"type": "function", "function": {"name": call.name, "arguments": arguments}}
            )
        entry["tool_calls"] = calls
    return entry


def _tool_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """JSON Schema of one call to any of `tools`: {"name": <tool>, "arguments": {...}}."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "name": {"const": tool.name},
                    # Closed objects: an open one lets a small model ramble inside the arguments
                    # until max_tokens (seconds, under a grammar).
                    "arguments": {"additionalProperties": False, **tool.parameters}
                    if tool.parameters
                    else {"type": "object", "additionalProperties": False},
                },
                "required": ["name", "arguments"],
            }
            for tool in tools
        ]
    }


def _partial_tag(text: str) -> bool:
    """Whether `text` ends with the beginning of `<tool_call>` (hold it back until we know)."""
    return any(text.endswith(_TOOL_TAG[:n]) for n in range(1, len(_TOOL_TAG)))


class LlamaLanguageModel:
    """The LanguageModel port over a GGUF file and llama.cpp."""

    def __init__(
        self,
        model_path: Path,
        *,
        offloader: Offloader,
        name: str = "llama",
        threads: int = 2,
        context_tokens: int = 4096,
        max_tokens: int = 160,
        temperature: float = 0.3,
        seed: int = -1,
    ) -> None:
        """`seed`: llama.cpp's sampling seed; -1 draws a random one (and so does 0, in
        llama-cpp-python), any other fixes the samples (tests use one)."""
        self.name = name
        self._path = model_path
        self._offload = offloader
        self._threads = threads
        self._context = context_tokens
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._seed = seed
        self._llama: Any = None
        self._formatter: Any = None
        self._grammars: dict[str, Any] = {}
        self.last_prompt = PromptStats(0, 0)

    async def load(self) -> None:
        if self._llama is None:
            self._offload.start()
            await self._offload.run(self._load)

    def _load(self) -> None:
        from llama_cpp import Llama  # noqa: PLC0415 - heavy; loaded on the worker
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

        if not self._path.is_file():
            raise EngineError(
                f"no language model at {self._path}; run `appliance models install` to install it"
            )
        llama = Llama(
            str(self._path),
            n_ctx=self._context,
            n_threads=self._threads,
            n_threads_batch=self._threads,
            seed=self._seed,
            verbose=False,
        )
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineError(
                f"{self._path.name} has no chat template: it is a base model, not a chat model"
            )
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token="<|im_end|>",  # noqa: S106 - a token, not a password
            bos_token="",
        )
        self._llama = llama

    async def warm_up(
        self, opening: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> PromptStats:
        """Evaluate the opening of every conversation (system prompt, tools, greeting) now."""
        await self.load()

        def evaluate() -> PromptStats:
            tokens = self._tokens([*opening, Message(role="user", content="Hello.")], tools)
            self._llama.create_completion(tokens, max_tokens=1, temperature=0.0)
            return self.last_prompt

        return await self._offload.run(evaluate)

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmOutput]:
        return self._stream(list(messages), list(tools))

    async def _stream(
        self, messages: list[Message], tools: list[ToolSpec]
    ) -> AsyncIterator[LlmOutput]:
        await self.load()
        # A short buffer: when the reply holds the model back (while the first sentence is
        # synthesized), generation pauses within a couple of tokens and frees the cores.
        async for output in self._offload.stream(lambda: self._generate(messages, tools), buffer=2):
            yield output

    def _tokens(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], suffix: str = ""
    ) -> list[int]:
        rendered = self._formatter(
            messages=[_as_template_message(m) for m in messages],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in tools
            ]
            or None,
        ).prompt
        tokens: list[int] = self._llama.tokenize(
            (rendered + suffix).encode(), add_bos=False, special=True
        )
        cached = self._llama.input_ids[: self._llama.n_tokens].tolist()
        reused = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            reused += 1
        # llama.cpp re-evaluates at least the last prompt token to get fresh logits.
        self.last_prompt = PromptStats(
            tokens=len(tokens), evaluated=len(tokens) - min(reused, len(tokens) - 1)
        )
        if len(tokens) + self._max_tokens > self._context:
            raise EngineError(
                f"the prompt has {len(tokens)} tokens; the context holds {self._context}"
            )
        return tokens

    def _generate(self, messages: list[Message], tools: list[ToolSpec]) -> Iterator[LlmOutput]:
        """Runs on the worker thread."""
        tokens = self._tokens(messages, tools)
        said = ""
        held = ""
        completion = self._llama.create_completion(
            tokens,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            stream=True,
            stop=_STOP,
        )
        try:
            for chunk in completion:
                held += chunk["choices"][0]["text"]
                if tools and ((said + held).lstrip().startswith("{") or _TOOL_TAG in held):
                    before = held.split(_TOOL_TAG, 1)[0] if _TOOL_TAG in held else ""
                    if before.strip() and not before.lstrip().startswith("{"):
                        yield TextDelta(before)
                        said += before
                    break
                if _partial_tag(held):
                    continue
                yield TextDelta(held)
                said += held
                held = ""
            else:
                if held:
                    yield TextDelta(held)
                return
        finally:
            completion.close()
        yield self._constrained_call(messages, tools, said)

    def _constrained_call(
        self, messages: list[Message], tools: list[ToolSpec], said: str
    ) -> ToolCall:
        from llama_cpp.llama_grammar import LlamaGrammar  # noqa: PLC0415

        schema = json.dumps(_tool_schema(tools), sort_keys=True)
        grammar = self._grammars.get(schema)
        if grammar is None:
            grammar = self._grammars[schema] = LlamaGrammar.from_json_schema(schema, verbose=False)
        tokens = self._tokens(messages, tools, suffix=said + _TOOL_TAG + "\n")
        result = self._llama.create_completion(
            tokens, max_tokens=256, temperature=0.0, grammar=grammar, stop=_STOP
        )
        raw = result["choices"][0]["text"].strip()
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        try:
            parsed = json.loads(raw)
            return ToolCall(
                id=call_id, name=str(parsed["name"]), arguments=json.dumps(parsed["arguments"])
            )
        except (json.JSONDecodeError, KeyError, TypeError):
            # Cut off by max_tokens; the registry reports it and the model gets one more try.
            return ToolCall(id=call_id, name=_guess_name(raw), arguments=raw)


def _guess_name(raw: str) -> str:
    marker = '"name": "'
    start = raw.find(marker)
    if start == -1:
        return "unknown"
    return raw[start + len(marker) :].split('"', 1)[0] or "unknown"
