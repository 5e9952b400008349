"""The language model in process with llama-cpp-python: streamed text, tool calls by grammar.

With no tools offered, text streams token by token. With tools, the two-stage route of
`route.py` runs: the model names its next action (only `speak` or a tool may be named), then either
the reply streams as text or the chosen tool's arguments are generated under its JSON Schema and
come back as one `ToolCall`. After a tool's result the next call decides again.

Prompts are rendered with the model's own chat template. llama.cpp keeps the KV cache of the last
prompt; each turn's prompt extends the previous one (same system prompt, same tool list, same
history), so only the new tokens are evaluated. `last_prompt` reports both counts (for a routed
answer, the tokens evaluated for the action and for the answer together); `warm_up` evaluates the
system prompt before the first call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
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
from appliance.engines.llm import route
from appliance.engines.offload import Offloader

__all__ = ["LlamaLanguageModel", "PromptStats"]

_STOP = ["<|im_end|>", "<|endoftext|>", "<tool_call>", "</tool_call>"]
_ARGUMENT_TOKENS = 128
_NOT_WORDS = (b"{", b"[", b"<", b"`")
"""What a spoken reply may not open with: having chosen `speak`, the 0.5B, given only the bare
persona, wrote the action out as JSON (`{"name": "speak", "description": "Say ...`) for 5 of 6
greetings, none of it caught by the stops because no `<tool_call>` came first."""


@dataclass(frozen=True, slots=True)
class PromptStats:
    tokens: int
    """Tokens in the whole prompt."""
    evaluated: int
    """Tokens that had to be evaluated (the rest came from the KV cache)."""


def _as_template_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "user", "content": route.result_for_model(message.content)}
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
        self._spellings: dict[str, list[int]] = {}
        self._not_words: Any = None
        self._opening: _Snapshot | None = None
        self.last_prompt = PromptStats(0, 0)
        self.last_action: str | None = None
        """What the last answer did: `speak` or a tool's name; None with no tools offered, or
        when the model had nothing to say after a result and no tool left to call."""

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
        self._not_words = _tokens_opening_with(llama, _NOT_WORDS)
        self._llama = llama

    async def warm_up(
        self, opening: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> PromptStats:
        """Evaluate the opening of every conversation (system prompt, tools, greeting) now."""
        await self.load()

        def evaluate() -> PromptStats:
            tokens = self._tokens([*opening, Message(role="user", content="Hello.")], tools)
            self._llama.create_completion(tokens, max_tokens=1, temperature=0.0)
            stats = self.last_prompt
            if self._opening is None or stats.evaluated > 1:
                self._opening = _Snapshot.take(self._llama)
            return stats

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
            tools=route.template_tools(tools) or None,
        ).prompt
        tokens: list[int] = self._llama.tokenize(
            (rendered + suffix).encode(), add_bos=False, special=True
        )
        reused = _shared(self._llama.input_ids[: self._llama.n_tokens].tolist(), tokens)
        opening = self._opening
        if opening is not None and _shared(opening.tokens, tokens) > reused:
            # Another prompt (a post-call summary) took the cache: put the opening's back.
            opening.restore(self._llama)
            reused = _shared(opening.tokens, tokens)
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
        """Runs on the worker thread: the action first when tools are offered, then its output."""
        self.last_action = None
        if not tools:
            yield from self._speak(messages, tools)
            return
        called = route.called_this_turn(messages)
        left = [tool for tool in tools if tool.name not in called]
        if messages[-1].role == "tool":
            # After a result the model's own first token decides: forced to name an action
            # there, the 0.5B named another tool every time (`route.py`).
            spoke = yield from self._speak(messages, tools)
            if spoke or not left:
                self.last_action = route.SPEAK.name if spoke else None
                return
            action = self._action(messages, tools, left, speak=False)
        else:
            action = self._action(messages, tools, left, speak=True)
        self.last_action = action
        chosen = self.last_prompt
        if action == route.SPEAK.name:
            deltas = self._speak(messages, tools)
            first = next(deltas, None)  # the speak prompt is evaluated with the first token
            self._add_evaluated(chosen)
            if first is not None:
                yield first
                yield from deltas
            return
        call = self._call(messages, tools, next(t for t in tools if t.name == action))
        self._add_evaluated(chosen)
        yield call

    def _add_evaluated(self, earlier: PromptStats) -> None:
        """`last_prompt` counts every token this answer evaluated, the action's prompt included."""
        self.last_prompt = PromptStats(
            tokens=self.last_prompt.tokens,
            evaluated=self.last_prompt.evaluated + earlier.evaluated,
        )

    def _action(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        offered: list[ToolSpec],
        *,
        speak: bool,
    ) -> str:
        """Stage 1: `speak` or one of `offered` (all `tools` stay in the prompt, for the
        cache), by greedy decoding constrained to their names: a few tokens."""
        tokens = self._tokens(messages, tools, suffix=route.call_opening())
        llama = self._llama
        llama.n_tokens = len(tokens) - self.last_prompt.evaluated  # the cached prefix
        llama.eval(tokens[llama.n_tokens :])
        names = [route.SPEAK.name] if speak else []
        names += [tool.name for tool in offered]
        spellings = {name: self._spelling(name) for name in names}
        return route.pick(spellings, self._logit, lambda token: llama.eval([token]))

    def _spelling(self, name: str) -> list[int]:
        """The tokens of `name` closed by its quote (so no name is a prefix of another)."""
        spelling = self._spellings.get(name)
        if spelling is None:
            spelling = self._spellings[name] = self._llama.tokenize(
                f'{name}"'.encode(), add_bos=False, special=False
            )
        return spelling

    def _logit(self, token: int) -> float:
        """The logit of `token` after the last evaluated one."""
        from llama_cpp import llama_get_logits_ith  # noqa: PLC0415 - loaded with the model

        return float(llama_get_logits_ith(self._llama.ctx, -1)[token])

    def _speak(
        self, messages: list[Message], tools: list[ToolSpec]
    ) -> Generator[TextDelta, None, bool]:
        """The reply in words, from the plain assistant header (so the action's tokens are not
        in the cache's way next turn), streamed as generated; returns whether it said anything."""
        from llama_cpp import LogitsProcessorList  # noqa: PLC0415 - loaded with the model

        tokens = self._tokens(messages, tools)
        completion = self._llama.create_completion(
            tokens,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            stream=True,
            # Having chosen to speak, a model that starts a call anyway is cut off there
            # rather than reading its JSON aloud (llama.cpp holds back a partial stop string).
            stop=_STOP,
            # ...and one that starts writing JSON or markup instead of words is kept to words.
            logits_processor=LogitsProcessorList([_words_first(len(tokens), self._not_words)]),
        )
        said = False
        try:
            for chunk in completion:
                text = chunk["choices"][0]["text"]
                if text:
                    said = True
                    yield TextDelta(text)
        finally:
            completion.close()
        return said

    def _call(self, messages: list[Message], tools: list[ToolSpec], tool: ToolSpec) -> ToolCall:
        """Stage 2: the chosen tool's arguments under its JSON Schema."""
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        if not route.takes_arguments(tool):
            return ToolCall(id=call_id, name=tool.name, arguments="{}")
        schema = json.dumps(route.arguments_schema(tool), sort_keys=True)
        tokens = self._tokens(messages, tools, suffix=route.arguments_opening(tool.name))
        result = self._llama.create_completion(
            tokens,
            max_tokens=_ARGUMENT_TOKENS,
            temperature=0.0,
            grammar=self._grammar(schema, json_schema=True),
        )
        raw = str(result["choices"][0]["text"]).strip()
        try:
            arguments = json.dumps(json.loads(raw))
        except json.JSONDecodeError:
            # Cut off by max_tokens; the registry reports it and the model gets one more try.
            arguments = raw
        return ToolCall(id=call_id, name=tool.name, arguments=arguments)

    def _grammar(self, source: str, *, json_schema: bool = False) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar  # noqa: PLC0415

        grammar = self._grammars.get(source)
        if grammar is None:
            grammar = self._grammars[source] = (
                LlamaGrammar.from_json_schema(source, verbose=False)
                if json_schema
                else LlamaGrammar.from_string(source, verbose=False)
            )
        return grammar


def _shared(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens `tokens` has in common with `cached`."""
    shared = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        shared += 1
    return shared


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """llama.cpp's state (its KV cache) after the conversation's opening was evaluated.

    A post-call summary evaluates another prompt in the same cache; without this, the next
    caller's first turn (or the warm-up after the jobs) evaluated the whole system prompt and
    tools again: about 1400 tokens, 20-30 s for the 1.5B on two cores. Restoring is a copy of
    the cache's used cells (tens of MB). Only llama.cpp's own state is kept: llama-cpp-python's
    `save_state` also copies its logits buffer, 300 MB for a 150k-token vocabulary.
    """

    tokens: tuple[int, ...]
    state: bytes

    @classmethod
    def take(cls, llama: Any) -> _Snapshot:
        import ctypes  # noqa: PLC0415

        from llama_cpp import llama_state_get_data, llama_state_get_size  # noqa: PLC0415

        size = llama_state_get_size(llama.ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_state_get_data(llama.ctx, buffer, size)
        return cls(tuple(llama.input_ids[: llama.n_tokens].tolist()), bytes(buffer)[:written])

    def restore(self, llama: Any) -> None:
        import ctypes  # noqa: PLC0415

        from llama_cpp import llama_state_set_data  # noqa: PLC0415

        buffer = (ctypes.c_uint8 * len(self.state)).from_buffer_copy(self.state)
        if llama_state_set_data(llama.ctx, buffer, len(self.state)) != len(self.state):
            raise EngineError("llama.cpp refused the saved state of the opening prompt")
        llama.input_ids[: len(self.tokens)] = self.tokens
        llama.n_tokens = len(self.tokens)


def _tokens_opening_with(llama: Any, openings: tuple[bytes, ...]) -> Any:
    """The vocabulary's tokens whose text opens (after spaces) with one of `openings` (a scan
    of ~150k tokens, under a second, once per load)."""
    import numpy as np  # noqa: PLC0415

    found = [
        token
        for token in range(llama.n_vocab())
        if llama.detokenize([token]).lstrip().startswith(openings)
    ]
    return np.array(found, dtype=np.intc)


def _words_first(prompt_tokens: int, banned: Any) -> Callable[[Any, Any], Any]:
    """A logits processor that keeps `banned` tokens out of the reply's first position."""
    import numpy as np  # noqa: PLC0415

    def process(input_ids: Any, scores: Any) -> Any:
        if len(input_ids) == prompt_tokens:
            scores[banned] = -np.inf
        return scores

    return process
