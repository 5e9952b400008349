"""Fallback: one port, several engines, tried in order.

Each engine has a circuit breaker and a latency budget. An engine that fails, or is slower than
its budget (for a stream: to its first item), yields to the next (the last one left has no
budget: there is nothing to yield to), and after `threshold` failures in a row it is skipped for
`cooldown_s`, then tried again. A stream that has started is never
switched mid-way: the caller has already heard it. The wrappers implement the same ports they
wrap, so a CallSession cannot tell one engine from a chain of them; a chain's stream says which
engine gave it once its first item has come (`ports.Answered`), for the turn's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from appliance.conversation.ports import (
    EngineError,
    LanguageModel,
    LlmOutput,
    Message,
    SpeechToText,
    TextToSpeech,
    ToolSpec,
    Transcript,
)
from appliance.observability.metrics import Metrics

__all__ = [
    "Breaker",
    "FallbackLanguageModel",
    "FallbackSpeechToText",
    "FallbackTextToSpeech",
    "Option",
]

_log = logging.getLogger(__name__)

E = TypeVar("E", SpeechToText, LanguageModel, TextToSpeech)
T = TypeVar("T")


class Breaker:
    """Opens after `threshold` consecutive failures; lets one try through after `cooldown_s`."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._cooldown = cooldown_s
        self._now = now
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def open(self) -> bool:
        """Refusing calls; after the cooldown it lets the next call through as a trial."""
        return self._opened_at is not None and self._now() - self._opened_at < self._cooldown

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at = self._now()


@dataclass(slots=True)
class Option(Generic[E]):
    engine: E
    budget_s: float | None = None
    """Seconds the engine gets (to its first item, for streams) before the next one is tried."""
    breaker: Breaker | None = None

    def __post_init__(self) -> None:
        if self.breaker is None:
            self.breaker = Breaker()


def _budget(option: Option[E], following: Option[E] | None) -> float | None:
    """The last engine left gets all the time it needs: there is nothing faster to yield to."""
    return option.budget_s if following is not None else None


class _AnsweredStream(Generic[T]):
    """A chain's stream: its items, and the engine that gave them (`ports.Answered`)."""

    def __init__(self) -> None:
        self.engine: str | None = None
        """None until the first item has come: until then, any engine may yet give it."""
        self.items: AsyncIterator[T] | None = None

    def __aiter__(self) -> _AnsweredStream[T]:
        return self

    async def __anext__(self) -> T:
        assert self.items is not None
        return await anext(self.items)

    async def aclose(self) -> None:
        if self.items is not None:
            await self.items.aclose()  # type: ignore[attr-defined]


class _Chain(Generic[E]):
    port = "engine"

    def __init__(self, options: Sequence[Option[E]], *, metrics: Metrics | None = None) -> None:
        if not options:
            raise ValueError("a fallback needs at least one engine")
        self._options: list[Option[E]] = list(options)
        self._metrics = metrics
        self.name = "+".join(o.engine.name for o in options)
        self.active: str = self._options[0].engine.name
        """The engine that answered last: the status page shows when a fallback is in use."""

    def insert(self, index: int, option: Option[E]) -> None:
        """Add an engine found after the chain was built (a LAN server, at start-up) at `index`
        in the order; one put first is the preferred engine, so it is the one shown answering
        until another answers."""
        was_preferred = self.active == self._options[0].engine.name
        self._options.insert(index, option)
        self.name = "+".join(o.engine.name for o in self._options)
        if index == 0 and was_preferred:
            self.active = option.engine.name

    @property
    def engines(self) -> tuple[str, ...]:
        """Every engine's name, in the order they are tried: the first is the preferred one."""
        return tuple(o.engine.name for o in self._options)

    @property
    def resting(self) -> tuple[str, ...]:
        """Engines whose breaker is open: skipped until their cooldown ends."""
        return tuple(o.engine.name for o in self._options if o.breaker and o.breaker.open)

    def _candidates(self) -> list[Option[E]]:
        ready = [o for o in self._options if o.breaker is not None and not o.breaker.open]
        return ready or self._options[-1:]  # every breaker open: still try the last resort

    def _failed(self, option: Option[E], reason: str, following: Option[E] | None) -> None:
        assert option.breaker is not None
        option.breaker.failed()
        used = following.engine.name if following is not None else "none"
        _log.warning(
            "%s engine %s failed (%s); trying %s", self.port, option.engine.name, reason, used
        )
        if self._metrics is not None:
            self._metrics.fallbacks.labels(self.port, option.engine.name, used).inc()

    def _succeeded(self, option: Option[E]) -> None:
        assert option.breaker is not None
        option.breaker.succeeded()
        self.active = option.engine.name

    async def _first_item(self, budget_s: float | None, stream: AsyncIterator[T]) -> T:
        async with asyncio.timeout(budget_s):
            return await anext(stream)

    def _answered(self, open_stream: Callable[[E], AsyncIterator[T]]) -> _AnsweredStream[T]:
        answered: _AnsweredStream[T] = _AnsweredStream()
        answered.items = self._stream(open_stream, answered)
        return answered

    async def _stream(
        self, open_stream: Callable[[E], AsyncIterator[T]], answered: _AnsweredStream[T]
    ) -> AsyncIterator[T]:
        candidates = self._candidates()
        errors: list[str] = []
        for i, option in enumerate(candidates):
            following = candidates[i + 1] if i + 1 < len(candidates) else None
            stream = open_stream(option.engine)
            try:
                first = await self._first_item(_budget(option, following), stream)
            except StopAsyncIteration:
                self._succeeded(option)
                return
            except (Exception, TimeoutError) as exc:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
                reason = "over budget" if isinstance(exc, TimeoutError) else repr(exc)
                errors.append(f"{option.engine.name}: {reason}")
                self._failed(option, reason, following)
                continue
            self._succeeded(option)
            answered.engine = option.engine.name
            try:
                yield first
                async for item in stream:
                    yield item
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            return
        raise EngineError(f"every {self.port} engine failed: " + "; ".join(errors))


class FallbackSpeechToText(_Chain[SpeechToText]):
    port = "stt"

    async def transcribe(self, pcm: bytes) -> Transcript:
        candidates = self._candidates()
        errors: list[str] = []
        for i, option in enumerate(candidates):
            following = candidates[i + 1] if i + 1 < len(candidates) else None
            try:
                async with asyncio.timeout(_budget(option, following)):
                    result = await option.engine.transcribe(pcm)
            except (Exception, TimeoutError) as exc:
                reason = "over budget" if isinstance(exc, TimeoutError) else repr(exc)
                errors.append(f"{option.engine.name}: {reason}")
                self._failed(option, reason, following)
                continue
            self._succeeded(option)
            return result
        raise EngineError("every stt engine failed: " + "; ".join(errors))


class FallbackLanguageModel(_Chain[LanguageModel]):
    port = "llm"

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmOutput]:
        return self._answered(lambda engine: engine.stream(messages, tools))


class FallbackTextToSpeech(_Chain[TextToSpeech]):
    port = "tts"

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._answered(lambda engine: engine.synthesize(text))
