"""Speech to text by Deepgram: its pre-recorded API, `POST /v1/listen`, one request a turn.

The turn's raw 16 kHz PCM16 is sent as it is (`encoding=linear16`, with its rate and channel
count in the query, as Deepgram asks of headerless audio), and the answer's
`results.channels[0].alternatives[0]` gives the words and Deepgram's confidence in them. The
port hands over a whole utterance, so the pre-recorded API fits it; the streaming websocket
would add a connection per call for no word sooner.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from appliance.audio.frame import SAMPLE_RATE
from appliance.conversation.ports import Transcript
from appliance.engines.cloud.service import CloudService, failure, refusal, wrong_type

__all__ = ["DeepgramSpeechToText"]

_JSON = "application/json"


class DeepgramSpeechToText:
    """The SpeechToText port over Deepgram's `/v1/listen`."""

    def __init__(
        self,
        service: CloudService,
        *,
        model: str = "nova-3",
        language: str = "en",
        name: str | None = None,
    ) -> None:
        self.name = name or f"deepgram:{model}"
        self._service = service
        self._query: dict[str, str | int] = {
            "model": model,
            "language": language,
            "encoding": "linear16",
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "smart_format": "true",
        }
        # Made now, not at the first fallback: building it (its TLS context) takes a while.
        self._client = service.client({"Authorization": f"Token {service.api_key}"})

    async def close(self) -> None:
        """Close the client's connections (at shutdown)."""
        await self._client.aclose()

    async def transcribe(self, pcm: bytes) -> Transcript:
        if len(pcm) < SAMPLE_RATE // 5:  # under 0.1 s: no words, as the local engine says
            return Transcript(text="", confidence=0.0, engine=self.name)
        try:
            response = await self._client.post(
                "/v1/listen",
                params=self._query,
                content=pcm,
                headers={"Content-Type": "application/octet-stream"},
            )
        except httpx.HTTPError as exc:
            raise failure(self._service, exc) from exc
        if response.status_code >= 400:
            raise refusal(self._service, response.status_code, response.content)
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith(_JSON):
            raise wrong_type(self._service, content_type, "JSON")
        text, confidence = self._heard(response.content)
        return Transcript(text=text, confidence=confidence if text else 0.0, engine=self.name)

    def _heard(self, body: bytes) -> tuple[str, float]:
        """The first channel's best alternative: its transcript and its confidence (0 to 1)."""
        try:
            answer: Any = json.loads(body)
            best = answer["results"]["channels"][0]["alternatives"][0]
            text = str(best["transcript"]).strip()
            confidence = float(best.get("confidence", 0.0))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._service.failed(
                "its answer has no results.channels[0].alternatives[0].transcript "
                f"({exc!r}); check DEEPGRAM_BASE_URL"
            ) from exc
        return text, min(1.0, max(0.0, confidence))
