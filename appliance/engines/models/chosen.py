"""Which models a configuration runs: one list for start-up, `doctor`, the status page, zeroconf."""

from __future__ import annotations

from appliance.settings import EngineSettings

__all__ = ["models_in_use"]


def models_in_use(engines: EngineSettings) -> list[str]:
    """The manifest names of every model these settings load (the energy VAD and
    `TURN_MODEL=none` need none)."""
    names = [engines.stt_model, engines.llm_model, engines.tts_voice, engines.embed_model]
    if engines.vad_model != "energy":
        names.append(engines.vad_model)
    if engines.turn_model != "none":
        names.append(engines.turn_model)
    return names
