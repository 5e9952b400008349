"""Speech to text with faster-whisper (CTranslate2), tuned for short phone turns.

Whisper's encoder always looks at a 30-second window; for a 2-second turn that is 93% padding
and, on two Pi-class cores, most of the latency (400 ms of 450 ms for tiny.en, measured). The
CTranslate2 encoder accepts a shorter window, so a turn is first decoded with a window just
longer than the audio, and at least 10 s (2 to 3 times faster than 30 s). Short windows can
make the decoder loop ("ten of clubs ten of clubs ..."), so the result is checked (it must reach
end-of-text, speak at a human rate, and not repeat itself) and, when it fails, the turn is
decoded again with the full window. Timestamps are on, so text the model places after the end
of the audio is dropped.
"""

from __future__ import annotations

import math
import time
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.audio.frame import SAMPLE_RATE, to_float
from appliance.conversation.ports import EngineError, Transcript
from appliance.engines.offload import Offloader
from appliance.observability.metrics import Metrics

__all__ = ["WhisperSpeechToText"]

_FULL_WINDOW = 3000
"""Mel frames in Whisper's native 30 s window (100 per second)."""
_MIN_WINDOW_S = 10
"""Shorter windows loop on short turns (tiny.en: 3 of 11 recordings at 3-5 s, none at 10 s)."""
_MARGIN_S = 2
_MAX_WORDS_PER_S = 5.0
_MAX_COMPRESSION = 2.4
_NO_SPEECH = 0.6
_MAX_VOCABULARY_TOKENS = 96
"""Whisper's context is 448 tokens; the prompt takes from what a long turn may say (the
vocabulary's first words are kept: the business's name and services come first)."""


class WhisperSpeechToText:
    """The SpeechToText port over a faster-whisper model directory."""

    def __init__(
        self,
        model_dir: Path,
        *,
        offloader: Offloader,
        name: str = "whisper",
        threads: int = 2,
        beam_size: int = 1,
        language: str = "en",
        trim_window: bool = True,
        drop_non_speech: bool = True,
        vocabulary: str = "",
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._dir = model_dir
        self._offload = offloader
        self._threads = threads
        self._beam = beam_size
        self._language = language
        self._trim = trim_window
        self._drop_non_speech = drop_non_speech
        """Drop words the model itself doubts were speech (a cough, a click on the line). A
        listener that knows it hears a voice, such as a check of the agent's own audio, keeps them:
        Whisper often doubts a clear two-word reply ("five five")."""
        self.vocabulary = vocabulary
        """Words callers will say (the business's name, services, people), given to the decoder
        as if said before: it then hears them more often (set before `load`). Measured on the
        39 front-desk scenario turns in espeak-ng voices, with the example profile's words:
        mean WER 0.069 -> 0.045 ("Doctor Park" was "Nokter Power"); on the recorded speech
        fixtures, which share no words with it, 0.074 -> 0.050."""
        self._prompt: list[int] = []
        self._metrics = metrics
        self._model: object | None = None
        self.full_window_decodes = 0
        """How many turns needed the second, full-window decode (for the benchmark)."""

    async def load(self) -> None:
        """Load the model on the engine's worker thread (once)."""
        if self._model is None:
            self._offload.start()
            await self._offload.run(self._load)

    def _load(self) -> None:
        from faster_whisper import WhisperModel  # noqa: PLC0415 - heavy; loaded on the worker
        from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415

        if not (self._dir / "model.bin").is_file():
            raise EngineError(
                f"no Whisper model in {self._dir}; run `appliance models install` to install it"
            )
        model = WhisperModel(
            str(self._dir), device="cpu", compute_type="int8", cpu_threads=self._threads
        )
        self._tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task="transcribe",
            language=self._language,
        )
        self._prompt = self._prompt_tokens()
        self._model = model

    def _prompt_tokens(self) -> list[int]:
        """The decoder's prompt: the vocabulary as previous text, then the start of a transcript."""
        start = list(self._tokenizer.sot_sequence)
        if not self.vocabulary.strip():
            return start
        words = self._tokenizer.encode(" " + " ".join(self.vocabulary.split()))
        return [self._tokenizer.sot_prev, *words[:_MAX_VOCABULARY_TOKENS], *start]

    async def transcribe(self, pcm: bytes) -> Transcript:
        await self.load()
        return await self._offload.run(self._transcribe, pcm)

    def _transcribe(self, pcm: bytes) -> Transcript:
        audio = to_float(pcm)
        seconds = len(audio) / SAMPLE_RATE
        if seconds < 0.1:
            return Transcript(text="", confidence=0.0, engine=self.name)
        started = time.perf_counter()
        text, confidence, no_speech, ok = self._decode(
            audio, window_s=None if not self._trim else seconds
        )
        if not ok or (self._trim and text and self._doubted(no_speech, confidence)):
            # A loop, or words it doubts are speech: the full window, whisper's own, decides
            # (on 004.wav's "five five" the short window's doubt crossed the line on one CPU
            # and not on another; the full window heard it on the CPU where it was lost).
            self.full_window_decodes += 1
            text, confidence, no_speech, _ = self._decode(audio, window_s=None)
        if self._metrics is not None:
            self._metrics.engine_rtf.labels(self.name).observe(
                (time.perf_counter() - started) / seconds
            )
        if self._doubted(no_speech, confidence):
            text = ""
        return Transcript(text=text, confidence=confidence, engine=self.name)

    def _doubted(self, no_speech: float, confidence: float) -> bool:
        """Whether words are dropped as not speech (room noise taken for words)."""
        return self._drop_non_speech and no_speech > _NO_SPEECH and confidence < 0.4

    def _decode(
        self, audio: npt.NDArray[np.float32], *, window_s: float | None
    ) -> tuple[str, float, float, bool]:
        """(text, confidence, no-speech probability, plausible) for one window size."""
        import ctranslate2  # noqa: PLC0415 - comes with faster-whisper

        model = self._model
        assert model is not None
        features = model.feature_extractor(audio)  # type: ignore[attr-defined]
        frames = (
            _FULL_WINDOW
            if window_s is None
            else min(_FULL_WINDOW, max(_MIN_WINDOW_S, math.ceil(window_s + _MARGIN_S)) * 100)
        )
        features = np.pad(features, ((0, 0), (0, max(0, frames - features.shape[1]))))[:, :frames]
        seconds = len(audio) / SAMPLE_RATE
        max_length = min(448, len(self._prompt) + int(13 + 8 * seconds))
        result = model.model.generate(  # type: ignore[attr-defined]
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], np.float32)),
            [self._prompt],
            beam_size=self._beam,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )[0]
        ids = result.sequences_ids[0]
        text = self._text_before(ids, seconds)
        confidence = float(math.exp(result.scores[0])) if result.scores else 0.0
        ended = len(ids) < max_length - len(self._prompt)
        return text, confidence, float(result.no_speech_prob), ended and _plausible(text, seconds)

    def _text_before(self, ids: list[int], seconds: float) -> str:
        """Decoded text of the segments that start inside the audio."""
        tokenizer = self._tokenizer
        kept: list[int] = []
        segment_start: float | None = None
        for token in ids:
            if token >= tokenizer.timestamp_begin:
                stamp = (token - tokenizer.timestamp_begin) * 0.02
                segment_start = stamp if segment_start is None else None
            elif token < tokenizer.eot and (segment_start is None or segment_start < seconds - 0.2):
                kept.append(token)
        return str(tokenizer.decode(kept)).strip()


def _plausible(text: str, seconds: float) -> bool:
    """False for the signatures of a looping decoder."""
    words = text.lower().split()
    if not words:
        return True
    if seconds > 0.5 and len(words) / seconds > _MAX_WORDS_PER_S:
        return False
    for n in range(2, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n]:
                return False
    encoded = text.encode()
    return len(encoded) < 24 or len(encoded) / len(zlib.compress(encoded)) <= _MAX_COMPRESSION
