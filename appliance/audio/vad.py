"""A model-free voice activity estimate from frame energy against a tracked noise floor.

Used where no Silero model is installed, and as the second VoiceActivity adapter that keeps
the port's contract honest. It is fooled by loud steady noise; Silero is not.
"""

from __future__ import annotations

import math

from appliance.audio.frame import rms_dbfs

__all__ = ["EnergyVad"]


class EnergyVad:
    """Speech probability per frame from loudness above an adaptive noise floor."""

    __slots__ = ("_floor", "_margin_db", "_min_dbfs")

    def __init__(self, *, margin_db: float = 12.0, min_dbfs: float = -50.0) -> None:
        self._floor = -70.0
        self._margin_db = margin_db
        self._min_dbfs = min_dbfs

    def reset(self) -> None:
        self._floor = -70.0

    def probability(self, pcm: bytes) -> float:
        level = rms_dbfs(pcm)
        # The floor falls fast (to follow quiet) and rises slowly (so speech does not raise it).
        rate = 0.3 if level < self._floor else 0.01
        self._floor += rate * (level - self._floor)
        if level < self._min_dbfs:
            return 0.0
        excess = level - (self._floor + self._margin_db)
        return 1.0 / (1.0 + math.exp(-excess / 2.0))
