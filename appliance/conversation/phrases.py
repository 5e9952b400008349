"""Fixed phrases (greeting, re-prompt, goodbyes), synthesized once and kept.

The greeting is the first thing every caller hears; synthesizing it per call would add piper's
time to every answer. The cache holds each phrase in memory and, through a `PhraseStore`, on disk
keyed by voice and text, so even the first call after a restart plays it at once.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

from appliance.conversation.ports import TextToSpeech

__all__ = ["PhraseCache", "PhraseStore"]


class PhraseStore(Protocol):
    def load(self, key: str) -> bytes | None: ...

    def save(self, key: str, pcm: bytes) -> None: ...


class PhraseCache:
    def __init__(self, tts: TextToSpeech, store: PhraseStore | None = None) -> None:
        self._tts = tts
        self._store = store
        self._memory: dict[str, bytes] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._tts.name}\n{text}".encode()).hexdigest()[:32]

    async def get(self, text: str) -> bytes:
        """The phrase as 16 kHz PCM16, synthesized at most once per voice and text."""
        key = self._key(text)
        if (pcm := self._memory.get(key)) is not None:
            return pcm
        async with self._locks.setdefault(key, asyncio.Lock()):
            if (pcm := self._memory.get(key)) is not None:
                return pcm
            pcm = (
                await asyncio.to_thread(self._store.load, key) if self._store is not None else None
            )
            if pcm is None:
                pcm = b"".join([chunk async for chunk in self._tts.synthesize(text)])
                if self._store is not None:
                    await asyncio.to_thread(self._store.save, key, pcm)
            self._memory[key] = pcm
            return pcm

    async def warm(self, *texts: str) -> None:
        """Synthesize phrases ahead of the first call."""
        for text in texts:
            await self.get(text)
