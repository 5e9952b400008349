"""Speech to text behind an OpenAI-compatible API: `/v1/audio/transcriptions`."""

from __future__ import annotations

from typing import Any

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.wav import wav_header
from appliance.conversation.ports import EngineError, Transcript
from appliance.engines.api.client import ApiEndpoint, engine_error, make_client

__all__ = ["ApiSpeechToText"]

_SURE = 1.0
"""The API's plain JSON answer gives no confidence; a transcript it returns is taken as heard
(the services behind it are larger models than the local one)."""


class ApiSpeechToText:
    """The SpeechToText port over `/v1/audio/transcriptions`: one WAV file a turn."""

    def __init__(
        self,
        endpoint: ApiEndpoint,
        *,
        model: str,
        language: str = "en",
        name: str | None = None,
    ) -> None:
        self.name = name or f"api:{model}"
        self._endpoint = endpoint
        self._model = model
        self._language = language
        # Made now, not at the first fallback: building it (its TLS context) takes ~0.3 s.
        self._client: Any = make_client(endpoint)

    async def close(self) -> None:
        """Close the client's connections (at shutdown)."""
        await self._client.close()

    async def transcribe(self, pcm: bytes) -> Transcript:
        if len(pcm) < SAMPLE_RATE // 5:  # under 0.1 s: no words, as the local engine says
            return Transcript(text="", confidence=0.0, engine=self.name)
        wav = wav_header(channels=1, rate=SAMPLE_RATE, data_bytes=len(pcm)) + pcm
        try:
            result = await self._client.audio.transcriptions.create(
                model=self._model,
                file=("turn.wav", wav, "audio/wav"),
                language=self._language,
                response_format="json",
            )
        except EngineError:
            raise
        except Exception as exc:  # the SDK's errors, and its transport's mid-stream
            raise engine_error("speech to text", self._endpoint, exc) from exc
        text = str(getattr(result, "text", "")).strip()
        return Transcript(text=text, confidence=_SURE if text else 0.0, engine=self.name)
