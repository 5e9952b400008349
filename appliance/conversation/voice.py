"""The voice stage: whole sentences in, their audio out, in order, each chunk stamped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from appliance.clock import Clock
from appliance.conversation.ports import TextToSpeech
from appliance.conversation.streams import closing, engine_of

__all__ = ["Priority", "SpeechChunk", "stored_phrase", "voice"]


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
    asked_at: float | None = None
    """When the voice was given this sentence (clock seconds); None for a stored phrase."""
    at: float | None = None
    """When this audio came out of the voice (clock seconds); None for a stored phrase."""
    engine: str = ""
    """The engine that voiced it (a fallback's, or the voice); empty for a stored phrase."""


async def voice(
    tts: TextToSpeech,
    sentences: AsyncIterator[str],
    *,
    clock: Clock,
    priority: Priority | None = None,
) -> AsyncIterator[SpeechChunk]:
    """Synthesize each sentence as it arrives, in order."""
    index = 0
    async for text in sentences:
        asked_at = clock.now()
        if index == 0 and priority is not None:
            priority.hold()
        try:
            async with closing(tts.synthesize(text)) as chunks:
                engine = ""
                async for pcm in chunks:
                    engine = engine or engine_of(chunks, tts.name)
                    if priority is not None:
                        priority.release()
                    yield SpeechChunk(
                        index,
                        text,
                        pcm,
                        asked_at=asked_at,
                        at=clock.now(),
                        engine=engine,
                    )
        finally:
            if priority is not None:
                priority.release()
        index += 1


async def stored_phrase(text: str, pcm: bytes) -> AsyncIterator[SpeechChunk]:
    """A fixed phrase's audio, synthesized earlier, as the voice stage would yield it."""
    yield SpeechChunk(sentence=0, text=text, pcm=pcm)
