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

Calls at once share the one model, so each keeps its own cache: when another conversation's
prompt is about to take llama.cpp's cache, the state of the one in it is saved (`_Kept`), and put
back when its next turn comes, so a turn evaluates only its own new words whichever call went
before it. Work no caller waits on (a post-call summary, `in_background`) gives the model up at a
sentence's end when a call's turn waits for it, and goes on after it (`_Paused`). A call's reply
never gives it up to another call's: tried, the pauses left gaps in the replies that callers took
for their turn, and three calls at once answered later (README, "Calls at once").
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from appliance.conversation.ports import (
    EngineError,
    LanguageModel,
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
_SENTENCE_ENDS = ".!?"
"""Where background work may give the model up to a call's turn."""
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
        kept_conversations: int = 4,
    ) -> None:
        """`seed`: llama.cpp's sampling seed; -1 draws a random one (and so does 0, in
        llama-cpp-python), any other fixes the samples (tests use one). `kept_conversations`:
        how many conversations' caches are saved beside the one in llama.cpp (each tens of MB;
        see `keep_conversations`)."""
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
        self._kept = _Kept(kept_conversations)
        self._waiting: set[object] = set()
        """Calls' turns queued for the model: background work that sees one gives the model up
        at its next sentence's end. Added on the loop, removed on the worker (a set's add and
        discard are atomic under the GIL)."""
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
        _log_through_logging()
        # Not llama-cpp-python's quiet mode (`verbose=False`): it silences a model's load by
        # pointing the process's stdout and stderr at /dev/null, so for those seconds every
        # thread's output was lost, an engine's abort message and faulthandler's stacks with
        # it (CI saw a load abort and print nothing). The loud mode's chatter is llama.cpp's
        # log (to `logging` at DEBUG) and this thread's own prints, dropped.
        with _quiet_thread():
            llama = Llama(
                str(self._path),
                n_ctx=self._context,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                seed=self._seed,
                verbose=True,
            )
        llama.verbose = False  # and no timings printed after each call
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
        return self._stream(list(messages), list(tools), background=False)

    async def keep_conversations(self, count: int) -> None:
        """Keep at most `count` conversations' caches beside the one in llama.cpp's: one for
        each call at once, so that a summary between their turns costs no call its cache.
        Those beyond are dropped now (each tens of MB)."""
        self._offload.start()
        await self._offload.run(self._kept.resize, count)

    def in_background(self) -> LanguageModel:
        """The same model for work no caller waits on (a post-call summary): it gives the model
        up at a sentence's end while a call's turn waits, and no call's reply waits for it."""
        return _Background(self)

    async def _stream(
        self, messages: list[Message], tools: list[ToolSpec], *, background: bool
    ) -> AsyncIterator[LlmOutput]:
        await self.load()
        paused: _Paused | None = None
        while True:
            ticket = object()
            if not background:
                self._waiting.add(ticket)

            def produce(
                ticket: object = ticket, paused: _Paused | None = paused
            ) -> Iterator[LlmOutput | _Paused]:
                self._waiting.discard(ticket)
                return self._generate(messages, tools, paused, yields=background)

            paused = None
            try:
                # A short buffer: when the reply holds the model back (while the first sentence
                # is synthesized), generation pauses within a couple of tokens and frees the cores.
                async for output in self._offload.stream(produce, buffer=2):
                    if isinstance(output, _Paused):
                        paused = output
                    else:
                        yield output
            finally:
                self._waiting.discard(ticket)  # never started (the caller went on, or barged in)
            if paused is None:
                return
            # Behind the turn that waited (the worker's queue is first come, first served).

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
        llama = self._llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        reused = _shared(cached, tokens)
        opening = self._opening
        common = opening.tokens if opening is not None else ()
        saved = [(_shared(s.tokens, tokens), s) for s in self._kept.snapshots]
        if opening is not None:
            saved.append((_shared(common, tokens), opening))
        best_shared, best = max(saved, key=lambda pair: pair[0], default=(0, None))
        cached_opening = _shared(common, cached)
        if reused <= _shared(common, tokens) and cached_opening < len(cached):
            # The prompt shares no more with the cache than with every call's opening: it is
            # another conversation's (another call's, or a summary's), and it is about to take
            # the cache. Keep this one's for its next turn (after choosing what to put back,
            # which keeping may push out of the kept list).
            self._kept.add(_Snapshot.take(llama), same_beyond=cached_opening)
        if best is not None and best_shared > reused:
            # Put back the opening (after a summary) or this conversation's own cache.
            best.restore(llama)
            self._kept.used(best)
            reused = best_shared
        # llama.cpp re-evaluates at least the last prompt token to get fresh logits.
        self.last_prompt = PromptStats(
            tokens=len(tokens), evaluated=len(tokens) - min(reused, len(tokens) - 1)
        )
        if len(tokens) + self._max_tokens > self._context:
            raise EngineError(
                f"the prompt has {len(tokens)} tokens; the context holds {self._context}"
            )
        return tokens

    def _generate(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        paused: _Paused | None,
        *,
        yields: bool,
    ) -> Iterator[LlmOutput | _Paused]:
        """Runs on the worker thread: the action first when tools are offered, then its output;
        or the rest of a reply that was `paused`. `yields`: a reply that gives the model up to
        a call's turn (background work)."""
        if paused is not None:
            yield from self._speak(messages, tools, paused, yields=yields)
            return
        self.last_action = None
        if not tools:
            yield from self._speak(messages, tools, yields=yields)
            return
        called = route.called_this_turn(messages)
        left = [tool for tool in tools if tool.name not in called]
        if messages[-1].role == "tool":
            # After a result the model's own first token decides: forced to name an action
            # there, the 0.5B named another tool every time (`route.py`).
            spoke = yield from self._speak(messages, tools, yields=yields)
            if spoke or not left:
                self.last_action = route.SPEAK.name if spoke else None
                return
            action = self._action(messages, tools, left, speak=False)
        else:
            action = self._action(messages, tools, left, speak=True)
        self.last_action = action
        chosen = self.last_prompt
        if action == route.SPEAK.name:
            deltas = self._speak(messages, tools, yields=yields)
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
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        paused: _Paused | None = None,
        *,
        yields: bool = False,
    ) -> Generator[TextDelta | _Paused, None, bool]:
        """The reply in words, from the plain assistant header (so the action's tokens are not
        in the cache's way next turn), streamed as generated; returns whether it said anything.

        When it `yields`, it stops at a sentence's end if a call's turn waits for the model,
        with `_Paused`: what it has said, from which it is continued (the words said so far as
        the prompt's tail, most of it still in the cache)."""
        from llama_cpp import LogitsProcessorList  # noqa: PLC0415 - loaded with the model

        earlier = paused or _Paused("", 0)
        tokens = self._tokens(messages, tools, suffix=earlier.said)
        completion = self._llama.create_completion(
            tokens,
            max_tokens=max(1, self._max_tokens - earlier.tokens),
            temperature=self._temperature,
            stream=True,
            # Having chosen to speak, a model that starts a call anyway is cut off there
            # rather than reading its JSON aloud (llama.cpp holds back a partial stop string).
            stop=_STOP,
            # ...and one that starts writing JSON or markup instead of words is kept to words.
            logits_processor=None
            if paused
            else LogitsProcessorList([_words_first(len(tokens), self._not_words)]),
        )
        said, generated = earlier.said, earlier.tokens
        try:
            for chunk in completion:
                generated += 1
                text = chunk["choices"][0]["text"]
                if not text:
                    continue
                said += text
                yield TextDelta(text)
                at_end = bool(text.strip()) and said.rstrip()[-1] in _SENTENCE_ENDS
                if yields and at_end and self._waiting:
                    yield _Paused(said, generated)
                    return True
        finally:
            completion.close()
        return bool(said)

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


@dataclass(frozen=True, slots=True)
class _Paused:
    """A reply that gave the model up at a sentence's end: what it has said so far, and how
    many tokens that took (counted against the reply's `max_tokens`)."""

    said: str
    tokens: int


class _Background:
    """`LlamaLanguageModel.in_background()`: its streams never make a call's reply pause."""

    def __init__(self, model: LlamaLanguageModel) -> None:
        self.name = model.name
        self.model = model

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmOutput]:
        return self.model._stream(list(messages), list(tools), background=True)


def _shared(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens `tokens` has in common with `cached`."""
    shared = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        shared += 1
    return shared


@dataclass(frozen=True, slots=True, eq=False)
class _Snapshot:
    """llama.cpp's state (its KV cache) after a prompt: every conversation's opening, or a
    call's conversation set aside while another call's turn takes the cache.

    A post-call summary evaluates another prompt in the same cache; without this, the next
    caller's first turn (or the warm-up after the jobs) evaluated the whole system prompt and
    tools again: about 1400 tokens, 20-30 s for the 1.5B on two cores. Taking and restoring
    are each one copy of the cache's used cells (tens of MB). Only llama.cpp's own state is
    kept: llama-cpp-python's `save_state` also copies its logits buffer, 300 MB for a
    150k-token vocabulary.
    """

    tokens: tuple[int, ...]
    state: Any
    """The state as llama.cpp wrote it: a ctypes byte array, given back to it as it is."""
    size: int

    @classmethod
    def take(cls, llama: Any) -> _Snapshot:
        import ctypes  # noqa: PLC0415

        from llama_cpp import llama_state_get_data, llama_state_get_size  # noqa: PLC0415

        size = llama_state_get_size(llama.ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_state_get_data(llama.ctx, buffer, size)
        return cls(tuple(llama.input_ids[: llama.n_tokens].tolist()), buffer, written)

    def restore(self, llama: Any) -> None:
        from llama_cpp import llama_state_set_data  # noqa: PLC0415

        if llama_state_set_data(llama.ctx, self.state, self.size) != self.size:
            raise EngineError("llama.cpp refused a saved state of its cache")
        llama.input_ids[: len(self.tokens)] = self.tokens
        llama.n_tokens = len(self.tokens)


class _Kept:
    """The saved caches of the conversations not in llama.cpp's, the most recently used last;
    at most `limit` (the oldest is dropped)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.snapshots: list[_Snapshot] = []

    def add(self, snapshot: _Snapshot, *, same_beyond: int) -> None:
        """Keep `snapshot`, in place of any earlier state of its conversation: one sharing more
        than `same_beyond` tokens with it (more than it shares with every call's opening)."""
        self.snapshots = [
            s for s in self.snapshots if _shared(s.tokens, snapshot.tokens) <= same_beyond
        ]
        self.snapshots.append(snapshot)
        while len(self.snapshots) > self._limit:
            self.snapshots.pop(0)

    def resize(self, limit: int) -> None:
        self._limit = limit
        while len(self.snapshots) > limit:
            self.snapshots.pop(0)

    def used(self, snapshot: _Snapshot) -> None:
        if snapshot in self.snapshots:
            self.snapshots.remove(snapshot)
            self.snapshots.append(snapshot)


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


_GGML_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
"""ggml's log levels (`enum ggml_log_level`: DEBUG 1, INFO 2, WARN 3, ERROR 4; llama-cpp-python's
own comment has an older order) as `logging`'s: its INFO is a model's metadata, line by line,
which a box's log needs only when debugging; its warnings are about the model file (the shipped
Qwen's tokenizer has "a control-looking token ... probably a bug in the model" at every load),
nothing an owner can act on: the service's log has them, a command's console does not."""
_llama_log = logging.getLogger("appliance.engines.llm.llama.cpp")
_routed: list[Any] = []
"""The ctypes callback given to llama.cpp, kept alive while the process lives."""


def _log_through_logging() -> None:
    """Send llama.cpp's log to `logging` (once per process: its logger is process-wide)."""
    if _routed:
        return
    import ctypes  # noqa: PLC0415

    import llama_cpp  # noqa: PLC0415 - heavy; loaded on the worker

    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        # 5 continues the last line; 0 (none) is not a level to log at.
        at = last[0] if level == 5 else _GGML_LEVELS.get(level, logging.DEBUG)
        last[0] = at
        line = text.decode("utf-8", errors="replace").rstrip("\n")
        if line and _llama_log.isEnabledFor(at):
            _llama_log.log(at, "%s", line)

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _routed.append(callback)


class _ThreadFilter(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` while one thread may not print: its writes are dropped,
    every other thread's go through."""

    def __init__(self, real: TextIO, quiet: int) -> None:
        self._real = real
        self._quiet = quiet

    def write(self, text: str) -> int:
        if threading.get_ident() == self._quiet:
            return len(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()


@contextlib.contextmanager
def _quiet_thread() -> Iterator[None]:
    """This thread's `print()`s go nowhere (the descriptors stay as they are)."""
    me = threading.get_ident()
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ThreadFilter(out, me), _ThreadFilter(err, me)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
