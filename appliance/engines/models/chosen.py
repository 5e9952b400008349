"""Which models a configuration runs: one list for start-up, `doctor`, the status page, zeroconf."""

from __future__ import annotations

from appliance.settings import EngineSettings

__all__ = ["models_in_use"]


def models_in_use(engines: EngineSettings) -> list[str]:
    """The manifest names of every model these settings load (the energy VAD needs none)."""
    names = [engines.stt_model, engines.llm_model, engines.tts_voice, engines.embed_model]
    return names if engines.vad_model == "energy" else [*names, engines.vad_model]
