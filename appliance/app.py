"""The composition root: the only module that names concrete engines, lines and stores.

`Appliance.build(settings)` wires the local engines (each on its own worker thread) behind the
conversation's ports, with fallback chains; `start()` loads and warms them; `session(line)` gives
a CallSession for a call on any line; `serve(stop)` answers calls on every configured line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

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
from appliance.settings import Settings, SipSettings
from appliance.telephony.calls import Admission, CallRouter, parse_networks
from appliance.telephony.digest import DigestAuth
from appliance.telephony.sip import Registration, SipConfig, SipStatus
from appliance.tools.call import end_call
from appliance.tools.clock import current_time

if TYPE_CHECKING:
    from appliance.telephony.sip.listener import SinkFactory, SipListener

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
            _admission(settings, clock),
            lambda line, sink: self.session(line, sink=sink),
            metrics,
        )
        self.sip_status = SipStatus()
        """Where the SIP line listens, its registration and its calls (for the status page)."""
        self.ready = False

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
            # its calls and releases what it holds.
            names = []
            if self.settings.sip.sip_enabled:
                await lines.enter_async_context(self.sip_listener())
                names.append("sip")
                if not self.router.admission.has_allowed_sources:
                    _log.warning("SIP_ALLOWED_SOURCES is empty: any address may call this box")
            _log.info(
                "ready for calls on %s (at most %d at once)",
                ", ".join(names) or "no line",
                self.router.admission.max_calls,
            )
            await stop.wait()
            _log.info("stopping")

    def sip_listener(
        self,
        *,
        bind_address: str | None = None,
        port: int | None = None,
        rtp_port: int | None = None,
        router: CallRouter | None = None,
        sinks: SinkFactory | None = None,
        register: bool = True,
    ) -> SipListener:
        """The SIP line from the settings (each argument overrides its setting)."""
        try:
            from appliance.telephony.sip.listener import SipListener  # noqa: PLC0415
        except ImportError as exc:
            raise RuntimeError(
                f"the SIP line needs pjsua2 ({exc}): install pjsua2-python (x86_64) or run "
                "firmware-scripts/build-pjproject.sh (boards), or set SIP_ENABLED=false"
            ) from exc
        config = _sip_config(self.settings.sip, self.router.admission.max_calls)
        config = replace(
            config,
            bind_address=config.bind_address if bind_address is None else bind_address,
            port=config.port if port is None else port,
            rtp_port=config.rtp_port if rtp_port is None else rtp_port,
            registration=config.registration if register else None,
        )
        return SipListener(
            config,
            router or self.router,
            clock=self.clock,
            metrics=self.metrics,
            status=self.sip_status,
            sinks=sinks or (lambda _: None),
        )

    def loopback_sip(self, sinks: SinkFactory) -> SipListener:
        """A SIP line on a free loopback port, not registered, open to any local caller: the
        harness places its calls here."""
        return self.sip_listener(
            bind_address="127.0.0.1",
            port=0,
            rtp_port=0,
            router=_loopback_router(self),
            sinks=sinks,
            register=False,
        )

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


def _loopback_router(app: Appliance) -> CallRouter:
    """Admits any local caller at any rate, up to the usual number of calls (the harness)."""
    admission = Admission(clock=app.clock, max_calls=app.router.admission.max_calls, rate_limit=0)
    return CallRouter(admission, lambda line, sink: app.session(line, sink=sink), app.metrics)


def _admission(settings: Settings, clock: Clock) -> Admission:
    """Admission for every line; its sources, rate and digest come from the SIP settings."""
    sip = settings.sip
    auth = None
    if sip.inbound_username and sip.inbound_password is not None:
        auth = DigestAuth(
            username=sip.inbound_username,
            password=sip.inbound_password.get_secret_value(),
            realm="tel3sis",
            clock=clock,
        )
    return Admission(
        clock=clock,
        max_calls=settings.calls.max_concurrent_calls,
        allowed=parse_networks(sip.allowed_sources),
        rate_limit=sip.rate_limit,
        rate_window_s=sip.rate_window_s,
        refusal=sip.refusal,
        auth=auth,
    )


def _sip_config(sip: SipSettings, max_calls: int) -> SipConfig:
    registration = None
    if sip.registrar and sip.registrar_username and sip.registrar_password is not None:
        registration = Registration(
            registrar=sip.registrar,
            username=sip.registrar_username,
            password=sip.registrar_password.get_secret_value(),
            expires_s=sip.register_expires_s,
        )
    transports = tuple(t.strip().lower() for t in sip.transports.split(",") if t.strip())
    if max_calls >= sip.pjsua_max_calls:
        _log.warning(
            "MAX_CONCURRENT_CALLS (%d) leaves no pjsua call for refusing INVITEs "
            "(SIP_PJSUA_MAX_CALLS is %d): callers beyond it get 486 from pjsua itself",
            max_calls,
            sip.pjsua_max_calls,
        )
    return SipConfig(
        bind_address=sip.bind_address,
        port=sip.sip_port,
        transports=transports,  # type: ignore[arg-type]
        public_address=sip.public_address or "",
        rtp_port=sip.rtp_port,
        rtp_port_range=sip.rtp_port_range,
        codecs=tuple(c.strip() for c in sip.codecs.split(",") if c.strip()),
        registration=registration,
        rtp_timeout_s=sip.rtp_timeout_s,
        max_calls=max_calls,
        pjsua_max_calls=sip.pjsua_max_calls,
        log_level=sip.pj_log_level,
    )


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
