"""A reply, as a chain of async-iterator stages: think (LLM + tools) -> sentences -> voice (TTS).

Each stage pulls from the one before. `prefetched` runs a stage ahead of its consumer in a task,
through a bounded queue, so the model keeps generating and piper keeps synthesizing while the
caller listens to the previous sentence; when the reply is cancelled (barge-in) the whole chain
unwinds, and the engines stop at their next token or chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from appliance.clock import Clock
from appliance.conversation.ports import (
    LanguageModel,
    Message,
    TextDelta,
    TextToSpeech,
    ToolCall,
)
from appliance.conversation.tools import ToolArgumentsError, ToolContext, ToolRegistry

__all__ = ["Priority", "SpeechChunk", "Stamps", "prefetched", "think", "voice"]

T = TypeVar("T")

MAX_TOOL_ROUNDS: Final = 3
_END: Final = object()


@dataclass(slots=True)
class Stamps:
    """When each milestone of a turn happened (clock seconds); None until it has."""

    speech_end: float | None = None
    endpoint: float | None = None
    stt_start: float | None = None
    stt_end: float | None = None
    recall_start: float | None = None
    recall_end: float | None = None
    llm_start: float | None = None
    llm_first_token: float | None = None
    first_sentence: float | None = None
    tts_start: float | None = None
    tts_first_audio: float | None = None
    first_audio: float | None = None

    def timings_ms(self) -> dict[str, float]:
        """Per-stage durations in milliseconds; `turn` is end of speech to first reply audio."""
        spans = {
            "endpoint": (self.speech_end, self.endpoint),
            "stt": (self.stt_start, self.stt_end),
            "recall": (self.recall_start, self.recall_end),
            "llm_first_token": (self.llm_start, self.llm_first_token),
            "first_sentence": (self.llm_start, self.first_sentence),
            "tts_first_audio": (self.tts_start, self.tts_first_audio),
            "turn": (self.speech_end, self.first_audio),
        }
        return {
            name: round((end - start) * 1000.0, 1)
            for name, (start, end) in spans.items()
            if start is not None and end is not None
        }

    def starts_ms(self) -> dict[str, float]:
        """When each stage of `timings_ms` began, in milliseconds after the caller stopped
        speaking (speculative work starts before the end of the turn is confirmed)."""
        if self.speech_end is None:
            return {}
        starts = {
            "endpoint": self.speech_end,
            "stt": self.stt_start,
            "recall": self.recall_start,
            "llm_first_token": self.llm_start,
            "first_sentence": self.llm_start,
            "tts_first_audio": self.tts_start,
            "turn": self.speech_end,
        }
        return {
            name: round((at - self.speech_end) * 1000.0, 1)
            for name, at in starts.items()
            if at is not None
        }


class Priority:
    """Holds the model back while the first sentence is being synthesized.

    On two cores the model and the voice would share both while the caller waits; the caller
    waits for the first sentence's audio, not for the rest of the reply, so the voice goes first.
    """

    def __init__(self) -> None:
        self._free = asyncio.Event()
        self._free.set()

    def hold(self) -> None:
        self._free.clear()

    def release(self) -> None:
        self._free.set()

    async def wait(self) -> None:
        await self._free.wait()


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    sentence: int
    """Index of the sentence within the reply."""
    text: str
    pcm: bytes


@dataclass(slots=True)
class Thought:
    """What `think` did besides producing text: the messages to keep, the tools it ran."""

    messages: list[Message] = field(default_factory=list)
    tools_run: list[tuple[str, bool]] = field(default_factory=list)
    fell_back_to_apology: bool = False


_call_ids = itertools.count(1)


async def think(
    llm: LanguageModel,
    tools: ToolRegistry,
    context: ToolContext,
    messages: list[Message],
    *,
    apology: str,
    clock: Clock,
    stamps: Stamps,
    thought: Thought,
    before_tool: Callable[[], Awaitable[object]],
    priority: Priority | None = None,
    on_tool: Callable[[ToolCall, bool | None, str], None] = lambda call, ok, result: None,
) -> AsyncIterator[str]:
    """The model's reply text; tool calls are run and their results fed back, up to 3 rounds.

    A tool call that cannot be parsed or validated gets one repair attempt: the model is told
    what was wrong and asked again. If the second attempt fails too, the caller hears `apology`.
    No tool runs before `before_tool` returns: a speculative reply must not act on a turn the
    caller has not finished.
    """
    conversation = list(messages)
    repaired = False
    wrote = False
    stamps.llm_start = clock.now()
    for _ in range(MAX_TOOL_ROUNDS):
        call: ToolCall | None = None
        if wrote:
            yield "\n"  # what the model says after a tool result starts a new sentence
        async with closing(llm.stream(conversation, tools.specs())) as outputs:
            async for output in outputs:
                if priority is not None:
                    await priority.wait()
                if stamps.llm_first_token is None:
                    stamps.llm_first_token = clock.now()
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
            arguments = tools.parse(call)
        except ToolArgumentsError as problem:
            on_tool(call, None, str(problem))
            if repaired:
                thought.fell_back_to_apology = True
                yield apology
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
        await before_tool()
        on_tool(call, None, "")
        ok, result = await tools.run(call, arguments, context)
        on_tool(call, ok, result)
        thought.tools_run.append((call.name, ok))
        answer = Message(role="tool", content=result, tool_call_id=call.id)
        conversation += [asked, answer]
        thought.messages += [asked, answer]
    thought.fell_back_to_apology = True
    yield apology


async def voice(
    tts: TextToSpeech,
    sentences: AsyncIterator[str],
    *,
    clock: Clock,
    stamps: Stamps,
    priority: Priority | None = None,
) -> AsyncIterator[SpeechChunk]:
    """Synthesize each sentence as it arrives, in order."""
    index = 0
    async for text in sentences:
        if stamps.first_sentence is None:
            stamps.first_sentence = clock.now()
        if stamps.tts_start is None:
            stamps.tts_start = clock.now()
            if priority is not None:
                priority.hold()
        try:
            async with closing(tts.synthesize(text)) as chunks:
                async for pcm in chunks:
                    if stamps.tts_first_audio is None:
                        stamps.tts_first_audio = clock.now()
                        if priority is not None:
                            priority.release()
                    yield SpeechChunk(sentence=index, text=text, pcm=pcm)
        finally:
            if priority is not None:
                priority.release()
        index += 1


@contextlib.asynccontextmanager
async def closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close `stream` on the way out, even when its consumer stops early (a break, a barge-in)."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class _Failed(Generic[T]):
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextlib.asynccontextmanager
async def prefetched(source: AsyncIterator[T], size: int) -> AsyncIterator[AsyncIterator[T]]:
    """Run `source` in a task, at most `size` items ahead of whoever iterates the result."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=size)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:
            await queue.put(_Failed(exc))
        else:
            await queue.put(_END)

    async def drain() -> AsyncIterator[T]:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]  # everything else in the queue came from source

    task = asyncio.create_task(pump(), name="prefetch")
    try:
        yield drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
