"""Scripted engines that keep time with a Clock, for conversation tests in virtual time.

Speech is simulated with tones: each word a caller can say has its own frequency. The fake STT
finds the tones in the audio (one word per voiced run) and the fake TTS speaks each sentence as
a tone whose frequency identifies the sentence, so a test can tell from the line's audio exactly
what was played, in what order, and where it stopped.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from appliance.audio.frame import FRAME_BYTES, SAMPLE_RATE, rms_dbfs, silence
from appliance.clock import Clock
from appliance.conversation.ports import (
    EngineError,
    LlmOutput,
    Message,
    TextDelta,
    ToolCall,
    ToolSpec,
    Transcript,
)

WORDS = (
    "hello",
    "weather",
    "paris",
    "time",
    "goodbye",
    "more",
    "yes",
    "no",
    "book",
    "help",
    "forget",
    "me",
    "bomb",
)
_BASE_HZ = 300.0
_STEP_HZ = 75.0


def word_hz(word: str) -> float:
    return _BASE_HZ + _STEP_HZ * WORDS.index(word)


def tone(hz: float, ms: float, level: float = 0.3) -> bytes:
    t = np.arange(int(SAMPLE_RATE * ms / 1000)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2").tobytes()


def say(*words: str, word_ms: float = 400, gap_ms: float = 60) -> bytes:
    """A caller utterance: a tone per word with short gaps (shorter than any endpoint)."""
    parts: list[bytes] = []
    for i, word in enumerate(words):
        if i:
            parts.append(bytes(int(SAMPLE_RATE * gap_ms / 1000) * 2))
        parts.append(tone(word_hz(word), word_ms))
    return b"".join(parts)


def quiet(ms: float) -> bytes:
    return silence(int(ms // 20))


def dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


def voiced_runs(pcm: bytes) -> list[bytes]:
    """Consecutive loud frames, split by two or more quiet frames."""
    runs: list[bytes] = []
    current: list[bytes] = []
    quiet_frames = 0
    for start in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        frame = pcm[start : start + FRAME_BYTES]
        if rms_dbfs(frame) > -40:
            current.append(frame)
            quiet_frames = 0
        else:
            quiet_frames += 1
            if quiet_frames >= 2 and current:
                runs.append(b"".join(current))
                current = []
    if current:
        runs.append(b"".join(current))
    return runs


@dataclass
class ToneSpeechToText:
    """Hears the words of `say()`: one word per voiced run, by its frequency."""

    clock: Clock
    delay_s: float = 0.15
    name: str = "tone-stt"
    fail: bool = False
    calls: int = 0

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.calls += 1
        await self.clock.sleep(self.delay_s)
        if self.fail:
            raise EngineError("scripted STT failure")
        words = []
        for run in voiced_runs(pcm):
            if len(run) < FRAME_BYTES * 3:
                continue
            hz = dominant_hz(run)
            nearest = min(WORDS, key=lambda w: abs(word_hz(w) - hz))
            if abs(word_hz(nearest) - hz) < _STEP_HZ / 2:
                words.append(nearest)
        return Transcript(text=" ".join(words), confidence=1.0 if words else 0.0, engine=self.name)


Reply = Sequence[LlmOutput] | str
"""A scripted answer: text (split into word tokens) or explicit outputs."""


@dataclass
class ScriptedLanguageModel:
    """Answers each call with the next scripted reply (or `respond(messages)`), token by token."""

    clock: Clock
    replies: list[Reply] = field(default_factory=list)
    respond: Callable[[Sequence[Message]], Reply] | None = None
    first_token_s: float = 0.12
    token_s: float = 0.02
    name: str = "scripted-llm"
    fail: bool = False
    seen: list[list[Message]] = field(default_factory=list)
    tools_seen: list[list[ToolSpec]] = field(default_factory=list)
    produced: int = 0
    """Outputs actually handed over (a cancelled reply stops early)."""
    produced_at: list[float] = field(default_factory=list)

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmOutput]:
        return self._stream(list(messages), list(tools))

    async def _stream(
        self, messages: list[Message], tools: list[ToolSpec]
    ) -> AsyncIterator[LlmOutput]:
        self.seen.append(messages)
        self.tools_seen.append(tools)
        await self.clock.sleep(self.first_token_s)
        if self.fail:
            raise EngineError("scripted LLM failure")
        if self.respond is not None:
            reply: Reply = self.respond(messages)
        else:
            reply = self.replies.pop(0) if self.replies else "I see."
        outputs: Sequence[LlmOutput] = (
            [TextDelta(w) for w in _tokens(reply)] if isinstance(reply, str) else reply
        )
        for i, output in enumerate(outputs):
            if i:
                await self.clock.sleep(self.token_s)
            self.produced += 1
            self.produced_at.append(self.clock.now())
            yield output


def _tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def sentence_hz(text: str) -> float:
    """The tone the fake TTS uses for a sentence: stable, distinct per text."""
    return 500.0 + (zlib.crc32(text.encode()) % 40) * 50.0


@dataclass
class ToneTextToSpeech:
    """Speaks a sentence as a tone of `ms_per_char` per character, after `delay_s`."""

    clock: Clock
    delay_s: float = 0.05
    ms_per_char: float = 60.0
    name: str = "tone-tts"
    fail: bool = False
    fail_unless: Callable[[str], bool] | None = None
    """When set, fail for every text it does not accept."""
    spoken: list[str] = field(default_factory=list)
    busy: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) of each synthesis."""

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._synthesize(text)

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        started = self.clock.now()
        await self.clock.sleep(self.delay_s)
        self.busy.append((started, self.clock.now()))
        if self.fail or (self.fail_unless is not None and not self.fail_unless(text)):
            raise EngineError("scripted TTS failure")
        self.spoken.append(text)
        # A sentence ends in a little silence, as piper's do, so sentences are told apart.
        yield tone(sentence_hz(text), len(text) * self.ms_per_char, level=0.2) + quiet(60)


def tool_call(name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(id="", name=name, arguments=arguments)
