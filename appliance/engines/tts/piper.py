"""Text to speech with piper (VITS on onnxruntime), one sentence at a time.

Piper synthesizes a sentence whole (RTF ~0.03 here), so streaming happens a level up: the reply
feeds sentences as the model completes them. Output (22.05 kHz for the medium voices) is
resampled once to the internal 16 kHz. The onnxruntime session is built here rather than by
piper so its thread count is ours: two cores shared with the model and Whisper.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.resample import resample
from appliance.conversation.ports import EngineError
from appliance.engines.offload import Offloader
from appliance.observability.metrics import Metrics

__all__ = ["PiperTextToSpeech"]


class PiperTextToSpeech:
    """The TextToSpeech port over a piper voice (`.onnx` + `.onnx.json`)."""

    def __init__(
        self,
        model_path: Path,
        *,
        offloader: Offloader,
        config_path: Path | None = None,
        name: str = "piper",
        threads: int = 1,
        length_scale: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._model = model_path
        self._config = config_path or model_path.with_name(model_path.name + ".json")
        self._offload = offloader
        self._threads = threads
        self._length_scale = length_scale
        self._metrics = metrics
        self._voice: Any = None
        self._synthesis: Any = None

    async def load(self) -> None:
        if self._voice is None:
            self._offload.start()
            await self._offload.run(self._load)

    def _load(self) -> None:
        import onnxruntime  # noqa: PLC0415 - heavy; loaded on the worker
        from piper import PiperVoice  # noqa: PLC0415
        from piper.config import PiperConfig, SynthesisConfig  # noqa: PLC0415

        for path in (self._model, self._config):
            if not path.is_file():
                raise EngineError(f"no piper voice file {path}; run `appliance models install`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(self._model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(self._config.read_text(encoding="utf-8")))
        self._synthesis = SynthesisConfig(length_scale=self._length_scale)
        self._voice = PiperVoice(session=session, config=config)

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._synthesize(text)

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        await self.load()
        async for pcm in self._offload.stream(lambda: self._chunks(text), buffer=4):
            yield pcm

    def _chunks(self, text: str) -> Iterator[bytes]:
        pieces = iter(self._voice.synthesize(text, self._synthesis))
        while True:
            # Timed from each resume: the time the consumer held the stream back is not piper's.
            started = time.perf_counter()
            chunk = next(pieces, None)
            if chunk is None:
                return
            pcm = resample(chunk.audio_int16_bytes, chunk.sample_rate, SAMPLE_RATE)
            if self._metrics is not None and pcm:
                seconds = len(pcm) / 2 / SAMPLE_RATE
                self._metrics.engine_rtf.labels(self.name).observe(
                    (time.perf_counter() - started) / seconds
                )
            yield pcm
