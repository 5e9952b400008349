"""Text to speech behind an OpenAI-compatible API: `/v1/audio/speech`, streamed.

The speech is asked for as raw PCM16 (OpenAI's `pcm`, 24 kHz) or as WAV (the rate read from its
header), converted to the port's 16 kHz as it arrives, and given on in chunks as the server
sends them, so the caller hears the start while the rest is still on its way.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any, Literal

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.resample import Resampler
from appliance.conversation.ports import EngineError
from appliance.engines.api.client import ApiEndpoint, engine_error, make_client

__all__ = ["ApiTextToSpeech"]

_AUDIO_TYPES = ("audio/", "application/octet-stream")
_WAV_HEADER = 44
"""Bytes of the canonical header (RIFF, `fmt `, `data`) that streaming servers send."""


class ApiTextToSpeech:
    """The TextToSpeech port over `/v1/audio/speech`."""

    def __init__(
        self,
        endpoint: ApiEndpoint,
        *,
        model: str,
        voice: str,
        audio_format: Literal["pcm", "wav"] = "pcm",
        sample_rate: int = 24_000,
        name: str | None = None,
    ) -> None:
        """`sample_rate`: Hertz of `pcm` speech (a WAV header says its own)."""
        self.name = name or f"api:{model}"
        self._endpoint = endpoint
        self._model = model
        self._voice = voice
        self._format = audio_format
        self._rate = sample_rate
        # Made now, not at the first fallback: building it (its TLS context) takes ~0.3 s.
        self._client: Any = make_client(endpoint)

    async def close(self) -> None:
        """Close the client's connections (at shutdown)."""
        await self._client.close()

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._synthesize(text)

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self._model, voice=self._voice, input=text, response_format=self._format
            ) as response:
                self._expect_audio(response.headers.get("content-type", ""))
                async for pcm in self._converted(response.iter_bytes()):
                    yield pcm
        except EngineError:
            raise
        except Exception as exc:  # the SDK's errors, and its transport's mid-stream
            raise engine_error("the voice", self._endpoint, exc) from exc

    def _expect_audio(self, content_type: str) -> None:
        if not content_type.startswith(_AUDIO_TYPES):
            raise EngineError(
                f"the voice at {self._endpoint.describe()} answered {content_type or 'no type'}"
                ", not audio; check that its base URL is the API's (ending in /v1)"
            )

    async def _converted(self, received: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """16 kHz PCM16 from the server's bytes, whatever sizes they come in."""
        pending = b""
        resampler: Resampler | None = (
            None if self._format == "wav" else Resampler(self._rate, SAMPLE_RATE)
        )
        async for data in received:
            pending += data
            if resampler is None:
                if len(pending) < _WAV_HEADER:
                    continue
                resampler = Resampler(_wav_rate(pending[:_WAV_HEADER]), SAMPLE_RATE)
                pending = pending[_WAV_HEADER:]
            whole = len(pending) - len(pending) % 2  # a sample may be split between reads
            if whole:
                out = resampler.convert(pending[:whole])
                pending = pending[whole:]
                if out:
                    yield out
        if resampler is None:
            raise EngineError("the voice's answer ended inside its WAV header")
        if tail := resampler.convert(b"", last=True):
            yield tail


def _wav_rate(header: bytes) -> int:
    """The sample rate of a canonical mono PCM16 WAV header."""
    riff, _, wave, fmt = struct.unpack_from("<4sI4s4s", header)
    channels, rate, bits = (
        struct.unpack_from("<H", header, 22)[0],
        struct.unpack_from("<I", header, 24)[0],
        struct.unpack_from("<H", header, 34)[0],
    )
    if (riff, wave, fmt) != (b"RIFF", b"WAVE", b"fmt ") or channels != 1 or bits != 16:
        raise EngineError(
            "the voice's WAV is not mono 16-bit PCM with the canonical header; "
            "set TTS_API_FORMAT=pcm"
        )
    return int(rate)
