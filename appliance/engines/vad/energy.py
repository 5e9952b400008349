"""Voice activity from loudness alone: no model, no thread (see appliance.audio.vad)."""

from __future__ import annotations

from appliance.audio.frame import FRAME_BYTES
from appliance.audio.vad import EnergyVad

__all__ = ["EnergyVoiceActivity"]


class _EnergyDetector:
    def __init__(self) -> None:
        self._vad = EnergyVad()

    async def probability(self, frame: bytes) -> float:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        return self._vad.probability(frame)


class EnergyVoiceActivity:
    """The VoiceActivity port without a model: cheap enough to run on the event loop."""

    name = "energy"

    def detector(self) -> _EnergyDetector:
        return _EnergyDetector()
