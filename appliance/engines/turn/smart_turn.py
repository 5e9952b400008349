"""Smart Turn v3.2 (pipecat's end-of-turn model, BSD-2): is the caller done, from their voice?

The silence policy (`conversation/turns.py`) reads the transcript; Smart Turn hears the voice:
the falling pitch and the drawn-out last word of someone who has finished, against the held
note of someone looking for a word. It scores the last 8 s of the turn (left-padded with
silence when shorter) as a probability that the turn is complete. Its input is Whisper's
log-mel spectrogram (80 bands, 10 ms hops, 800 frames) of the waveform normalized to zero mean
and unit variance; faster-whisper's feature extractor computes the same spectrogram, so the
model's one ONNX file (8.7 MB int8, taken from the pipecat-ai wheel by the model manager) is
all this needs. One score took 60-120 ms here (94 ms of CPU in shared/MODELS.md); it runs on its
own worker, beside the transcription of the same pause. How its score is used, and what that
was measured to do: `conversation/turns.py`, `VETO_BELOW`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio.frame import SAMPLE_RATE, to_float
from appliance.engines.offload import Offloader
from appliance.engines.onnx import cpu_session

__all__ = ["SmartTurn"]

_WINDOW_S = 8
_NORM_EPS = 1e-7


class SmartTurn:
    """The probability that a caller's turn is complete, from its audio (16 kHz PCM16)."""

    def __init__(self, model_path: Path, *, offloader: Offloader, name: str = "smart-turn") -> None:
        self.name = name
        self._path = model_path
        self._offload = offloader
        self._session: Any = None
        self._features: Any = None

    async def load(self) -> None:
        if self._session is None:
            self._offload.start()
            await self._offload.run(self._load)

    def _load(self) -> None:
        # The package before its submodule: the speech-to-text engine imports the package on
        # its own worker at the same time, and importing only the submodule here took the two
        # import locks in the other order. Python raised `_DeadlockError` in one of them and
        # the load failed (`appliance call` then aborted on its way out, in CI and here).
        import faster_whisper  # noqa: F401, PLC0415
        from faster_whisper.feature_extractor import FeatureExtractor  # noqa: PLC0415

        session = cpu_session(
            self._path,
            what="end-of-turn model",
            fix="run `appliance models install` to install it, or set TURN_MODEL=none",
        )
        self._features = FeatureExtractor(chunk_length=_WINDOW_S)
        self._session = session

    async def complete(self, pcm: bytes) -> float:
        """The probability, 0 to 1, that the turn in `pcm` is finished."""
        await self.load()
        return await self._offload.run(self._score, pcm)

    def _score(self, pcm: bytes) -> float:
        samples = to_float(pcm)[-_WINDOW_S * SAMPLE_RATE :]
        padded = np.zeros(_WINDOW_S * SAMPLE_RATE, np.float32)
        padded[len(padded) - len(samples) :] = samples
        normalized = (padded - padded.mean()) / np.sqrt(padded.var() + _NORM_EPS)
        mel = self._features(normalized, padding=0)[None, :, :].astype(np.float32)
        (probability,) = self._session.run(None, {"input_features": mel})
        return float(np.asarray(probability).reshape(-1)[0])
