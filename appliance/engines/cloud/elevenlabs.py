"""Text to speech by ElevenLabs: `POST /v1/text-to-speech/{voice_id}/stream`, raw PCM.

The speech is asked for as `pcm_16000` (headerless 16 kHz PCM16, the port's own format: no
conversion) and given on in the pieces the service sends, so the caller hears the start while
the rest is on its way. A piece may end inside a sample; its odd byte waits for the next.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from appliance.audio.frame import SAMPLE_RATE
from appliance.engines.cloud.service import CloudService, failure, refusal, wrong_type

__all__ = ["ElevenLabsTextToSpeech"]

_AUDIO_TYPES = ("audio/", "application/octet-stream")
_FORMAT = f"pcm_{SAMPLE_RATE}"


class ElevenLabsTextToSpeech:
    """The TextToSpeech port over ElevenLabs' streaming speech endpoint."""

    def __init__(
        self,
        service: CloudService,
        *,
        voice_id: str,
        model: str = "eleven_flash_v2_5",
        name: str | None = None,
    ) -> None:
        self.name = name or f"elevenlabs:{model}"
        self._service = service
        self._path = f"/v1/text-to-speech/{quote(voice_id, safe='')}/stream"
        self._model = model
        # Made now, not at the first fallback: building it (its TLS context) takes a while.
        self._client = service.client({"xi-api-key": service.api_key})

    async def close(self) -> None:
        """Close the client's connections (at shutdown)."""
        await self._client.aclose()

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._synthesize(text)

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not any(ch.isalnum() for ch in text):
            return  # nothing to say ("..."): no request, no charge
        request = self._client.build_request(
            "POST",
            self._path,
            params={"output_format": _FORMAT},
            json={"text": text, "model_id": self._model},
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise failure(self._service, exc) from exc
        try:
            await self._expect_audio(response)
            async for pcm in _whole_samples(response.aiter_bytes()):
                yield pcm
        except httpx.HTTPError as exc:  # a stall or a reset mid-stream
            raise failure(self._service, exc) from exc
        finally:
            await response.aclose()

    async def _expect_audio(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise refusal(self._service, response.status_code, await response.aread())
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith(_AUDIO_TYPES):
            raise wrong_type(self._service, content_type, "audio")


async def _whole_samples(received: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes as they come, each piece cut to whole 16-bit samples."""
    pending = b""
    async for data in received:
        pending += data
        whole = len(pending) - len(pending) % 2
        if whole:
            yield pending[:whole]
            pending = pending[whole:]
