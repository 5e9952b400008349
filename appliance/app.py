"""The composition root: the only module that names concrete engines, lines and stores.

`Appliance.build(settings)` wires the local engines (each on its own worker thread) behind the
conversation's ports, with fallback chains; `start()` loads and warms them; `session(line)` gives
a CallSession for a call on any line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.clock import Clock, LoopClock
from appliance.conversation.events import EventSink
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallLine, Message, VoiceActivity
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.conversation.turns import TurnConfig
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
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.engines.vad.silero import SileroVoiceActivity
from appliance.memory.phrases import FilePhraseStore
from appliance.observability.metrics import Metrics
from appliance.observability.systemd import ServiceNotifier
from appliance.settings import Settings
from appliance.telephony.calls import Admission, CallRouter
from appliance.tools.call import end_call
from appliance.tools.clock import current_time

__all__ = ["Appliance"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Local:
    """The concrete local engines, kept for loading, warm-up and shutdown."""

    stt: WhisperSpeechToText
    llm: LlamaLanguageModel
    tts: PiperTextToSpeech
    vad: SileroVoiceActivity | None
    workers: list[Offloader]


class Appliance:
    def __init__(
        self,
        settings: Settings,
        *,
        engines: Engines,
        local: _Local,
        metrics: Metrics,
        clock: Clock,
        tools: ToolRegistry,
        phrases: PhraseCache,
        session_config: SessionConfig,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.metrics = metrics
        self.clock = clock
        self.tools = tools
        self.phrases = phrases
        self.session_config = session_config
        self._local = local
        self.router = CallRouter(
            Admission(clock=clock, max_calls=settings.calls.max_concurrent_calls),
            lambda line, sink: self.session(line, sink=sink),
            metrics,
        )
        self.ready = False
        service = settings.service
        self.service = ServiceNotifier(
            service.notify_socket,
            watchdog_usec=service.watchdog_usec,
            watchdog_pid=service.watchdog_pid,
            pid=os.getpid(),
        )
        """systemd's readiness and watchdog (a no-op when not run by systemd)."""

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Appliance:
        """Wire everything from settings; loads nothing yet (see `start`)."""
        clock = clock or LoopClock()
        metrics = Metrics()
        store = ModelStore(settings.paths.models, Manifest.load())
        eng = settings.engines

        def worker(name: str, threads: int = 1) -> Offloader:
            return Offloader(name, threads=threads, metrics=metrics, timeout=60.0)

        workers = [worker("stt"), worker("llm"), worker("tts"), worker("vad")]
        stt = WhisperSpeechToText(
            store.path(eng.stt_model),
            offloader=workers[0],
            name=eng.stt_model,
            threads=eng.stt_threads,
            beam_size=eng.stt_beam_size,
            metrics=metrics,
        )
        llm = LlamaLanguageModel(
            _only_file(store, eng.llm_model, ".gguf"),
            offloader=workers[1],
            name=eng.llm_model,
            threads=eng.llm_threads,
            context_tokens=eng.llm_context_tokens,
            max_tokens=eng.llm_max_tokens,
            temperature=eng.llm_temperature,
        )
        tts = PiperTextToSpeech(
            _only_file(store, eng.tts_voice, ".onnx"),
            offloader=workers[2],
            name=eng.tts_voice,
            threads=eng.tts_threads,
            length_scale=eng.tts_length_scale,
        )
        silero = (
            None
            if eng.vad_model == "energy"
            else SileroVoiceActivity(
                _only_file(store, eng.vad_model, ".onnx"), offloader=workers[3]
            )
        )
        vad: VoiceActivity = silero if silero is not None else EnergyVoiceActivity()

        def breaker() -> Breaker:
            return Breaker(now=clock.now)

        engines = Engines(
            stt=FallbackSpeechToText(
                [Option(stt, eng.stt_budget_ms / 1000, breaker())], metrics=metrics
            ),
            llm=FallbackLanguageModel(
                [Option(llm, eng.llm_budget_ms / 1000, breaker())], metrics=metrics
            ),
            tts=FallbackTextToSpeech(
                [Option(tts, eng.tts_budget_ms / 1000, breaker())], metrics=metrics
            ),
            vad=vad,
        )
        conv = settings.conversation
        persona = Persona.load(
            agent_name=conv.agent_name,
            business_name=conv.business_name,
            prompt_file=conv.persona_file,
            greeting=conv.greeting,
        )
        session_config = SessionConfig(
            persona=persona,
            turn=TurnConfig(
                endpoint_ms=conv.endpoint_silence_ms, min_speech_ms=conv.barge_in_min_speech_ms
            ),
            max_history_turns=conv.max_history_turns,
            no_input_timeout_s=conv.no_input_timeout_s,
            max_call_s=conv.max_call_minutes * 60,
        )
        return cls(
            settings,
            engines=engines,
            local=_Local(stt=stt, llm=llm, tts=tts, vad=silero, workers=workers),
            metrics=metrics,
            clock=clock,
            tools=ToolRegistry([end_call, current_time(clock)]),
            phrases=PhraseCache(engines.tts, FilePhraseStore(settings.paths.cache / "phrases")),
            session_config=session_config,
        )

    async def start(self) -> dict[str, float]:
        """Load every model and warm it up; returns seconds taken per step."""
        took: dict[str, float] = {}
        local = self._local

        async def timed(step: str, work: asyncio.Future[object] | object) -> None:
            started = time.perf_counter()
            await work  # type: ignore[misc]
            took[step] = round(time.perf_counter() - started, 2)

        # Loads run on different worker threads, so they overlap.
        await asyncio.gather(
            timed("stt", local.stt.load()),
            timed("llm", local.llm.load()),
            timed("tts", local.tts.load()),
            timed("vad", local.vad.load() if local.vad is not None else asyncio.sleep(0)),
        )
        persona = self.session_config.persona
        # Every call's prompt starts with the system prompt, the tools and the greeting: evaluate
        # that prefix now, and a caller's first turn costs only its own words.
        opening = [
            Message(role="system", content=persona.system_prompt),
            Message(role="assistant", content=persona.greeting),
        ]
        await timed("llm warm-up", local.llm.warm_up(opening, self.tools.specs()))
        # The first inference of a CTranslate2 model is several times slower than the rest.
        await timed("stt warm-up", local.stt.transcribe(_warm_up_audio()))
        await timed("phrases", self.phrases.warm(persona.greeting, persona.reprompt))
        self.ready = True
        return took

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer calls on every configured line until `stop` is set, then hang them all up."""
        async with contextlib.AsyncExitStack() as lines:
            # Each line is an async context manager: it listens on entry and, on exit, hangs up
            # its calls and releases what it holds. Lines are added here as they are configured.
            del lines
            _log.info(
                "ready for calls (at most %d at once); no line is configured yet",
                self.router.admission.max_calls,
            )
            # systemd: ready once the lines listen; pings while the loop runs; stopping first.
            async with self.service.serving("answering calls", self.clock.sleep):
                await stop.wait()
            _log.info("stopping")

    def session(self, line: CallLine, *, sink: EventSink | None = None) -> CallSession:
        """A conversation for one call on `line`."""
        return CallSession(
            line,
            self.engines,
            self.session_config,
            tools=self.tools,
            phrases=self.phrases,
            clock=self.clock,
            sink=sink,
            metrics=self.metrics,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop the engines' worker threads (waiting up to `timeout` for each)."""
        for worker in self._local.workers:
            if not worker.close(timeout):
                _log.warning("engine worker %s did not stop within %.0f s", worker.name, timeout)


def _warm_up_audio() -> bytes:
    """One second of quiet noise: enough to run the encoder and decoder once."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal(16_000) * 300).astype("<i2").tobytes()


def _only_file(store: ModelStore, model: str, suffix: str) -> Path:
    """The model's one file ending in `suffix` (its weights)."""
    entry = store.manifest.get(model)
    matches = [f.path for f in entry.files if f.path.endswith(suffix)]
    if len(matches) != 1:
        raise ValueError(f"model {model} has {len(matches)} files ending in {suffix}")
    return store.file(model, matches[0])
