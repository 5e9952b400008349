"""The appliance: built from settings, started, serving calls on every line, closed.

`Appliance.build(settings)` wires the engines (`engines.py`), the records (`records.py`), the
lines (`lines.py`) and what the operator sees (`web.py`); `start()` loads and warms the engines
and opens the records; `answer(line)` is the one path of every call on every line, the harness's
included (`CallDesk.answer` in `appliance/telephony/calls.py`); `serve(stop)` answers calls on
every configured line until told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from appliance import __version__
from appliance.app.calendar import token_store
from appliance.app.capacity import calls_for
from appliance.app.engines import LocalEngines, build_engines, timed
from appliance.app.front import FrontDesk, front_desk
from appliance.app.inference import browse_lan, inference_server, join_lan_servers
from appliance.app.lines import (
    admission_from,
    gpio_button,
    sip_config,
    speakerphone,
    twilio_line,
)
from appliance.app.records import build_records, messengers
from appliance.app.screen import build_screen
from appliance.app.web import Watched, advertisement, status_routers
from appliance.clock import Clock, LoopClock
from appliance.conversation.events import EventSink
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallLine, Message, Recall
from appliance.conversation.profile import FAQ_IN_PROMPT_MAX
from appliance.conversation.session import CallSession, SessionConfig
from appliance.conversation.turns import TurnConfig
from appliance.engines.models.chosen import models_in_use
from appliance.inference.server import InferenceServer
from appliance.memory.faq import FaqIndex, WithFaq
from appliance.memory.phrases import FilePhraseStore
from appliance.memory.records import Records
from appliance.observability.metrics import Metrics
from appliance.observability.systemd import ServiceNotifier
from appliance.safety.screen import SafetyScreen
from appliance.settings import ConversationSettings, LocalSettings, Settings, TwilioSettings
from appliance.telephony.calls import Admission, CallDesk
from appliance.telephony.sip import SipStatus
from appliance.telephony.twilio.streams import Observe
from appliance.web.advertise import Advertisement
from appliance.web.live import LiveCalls
from appliance.web.server import WebServer, create_app
from appliance.web.twilio import twilio_router

if TYPE_CHECKING:
    from appliance.telephony.local.phone import LocalPhone
    from appliance.telephony.local.wake import WakeListener
    from appliance.telephony.sip.listener import SinkFactory, SipListener

__all__ = ["Appliance"]

_log = logging.getLogger(__name__)


class Appliance:
    def __init__(
        self,
        settings: Settings,
        *,
        local: LocalEngines,
        metrics: Metrics,
        clock: Clock,
        records: Records,
        front: FrontDesk,
        screen: SafetyScreen | None = None,
    ) -> None:
        self.settings = settings
        self.engines = local.chains
        self.metrics = metrics
        self.clock = clock
        self.records = records
        self._local = local
        self.front = front
        """The business profile, the persona and the tools (one system prompt for every call)."""
        self.tools = front.tools
        self.screen = screen
        """Every call's safety screen (None: `SAFETY_SCREEN` is off)."""
        profile = front.profile
        self.faq = (
            FaqIndex(profile.faq, local.embedder)
            if profile is not None and len(profile.faq) > FAQ_IN_PROMPT_MAX
            else None
        )
        """A FAQ too long for the prompt, searched per turn (built by `start`)."""
        self.phrases = PhraseCache(
            self.engines.tts, FilePhraseStore(settings.paths.cache / "phrases")
        )
        self.session_config = _session_config(settings.conversation, front.persona)
        self.live = LiveCalls(clock=clock, metrics=metrics)
        """Calls in progress and what is said on them, for the status page."""
        self.desk = self._desk(admission_from(settings, clock))
        """Where every line hands its calls."""
        self.answer = self.desk.answer
        """Take a call on a line as every line does (`CallDesk.answer`); returns why it ended."""
        self.sip_status = SipStatus()
        """Where the SIP line listens, its registration and its calls (for the status page)."""
        self.ready = False
        self.started_at: float | None = None
        """Unix seconds; set by `start`."""
        metrics.build_info.labels(__version__, ",".join(self.model_names)).set(1)
        service = settings.service
        self.service = ServiceNotifier(
            service.notify_socket,
            watchdog_usec=service.watchdog_usec,
            watchdog_pid=service.watchdog_pid,
            pid=os.getpid(),
        )
        """systemd's readiness and watchdog (a no-op when not run by systemd)."""

    @property
    def system_prompt(self) -> str:
        """What the agent is told on every call: persona, business facts, which tool for what."""
        return self.session_config.persona.system_prompt

    @property
    def model_names(self) -> list[str]:
        """The models this configuration runs."""
        return models_in_use(self.settings.engines)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Appliance:
        """Wire everything from settings; loads nothing yet (see `start`). Raises `ProfileError`
        when the business profile cannot be read or is not valid, `ScreenError` when the safety
        classifier file cannot be used."""
        clock = clock or LoopClock()
        metrics = Metrics()
        assert settings.paths.models_dir is not None
        local = build_engines(
            settings.engines,
            settings.paths.models_dir,
            metrics=metrics,
            clock=clock,
            # Unset, the calls at once are measured when `serve` opens its lines: at most what
            # the SIP line holds.
            calls=settings.calls.max_concurrent_calls or settings.sip.pjsua_max_calls - 1,
        )
        records = build_records(
            settings, clock=clock, metrics=metrics, llm=local.job_llm, embedder=local.embedder
        )
        mailer, texter = messengers(settings)
        front = front_desk(
            settings.conversation,
            settings.integrations,
            clock=clock,
            texter=texter,
            mailer=mailer,
            memory=records.kept if settings.records.remember_callers else None,
            tokens=token_store(settings.integrations, records.db, clock),
        )
        local.stt.vocabulary = front.vocabulary
        return cls(
            settings,
            local=local,
            metrics=metrics,
            clock=clock,
            records=records,
            front=front,
            screen=build_screen(
                settings.conversation, local.embedder, cache=settings.paths.models / ".cache"
            ),
        )

    async def start(self) -> dict[str, float]:
        """Load every model and warm it up, and open the records; returns seconds per step."""
        took: dict[str, float] = {}
        local = self._local
        self.started_at = self.clock.wall()
        self.metrics.start_time.set(self.started_at)
        browsing = browse_lan(self.settings)  # LAN_INFERENCE=auto: browses while models load
        await asyncio.gather(local.load(took), self._open_records(took))
        if self.faq is not None:
            await timed(took, "faq", self.faq.build())
        if self.screen is not None:
            await timed(took, "safety", self.screen.prepare())
        await local.warm_up(self.session_config.persona, self.tools, self.phrases, took)
        if browsing is not None:
            lan = join_lan_servers(self.settings, local, browsing, clock=self.clock)
            await timed(took, "lan inference", lan)
        persona, tools = self.session_config.persona, self.tools
        self.records.use_runner(
            busy=lambda: self.desk.admission.active > 0,
            after_idle_work=lambda: local.warm_opening(persona, tools),
        )
        self.ready = True
        return took

    async def _size_admission(self) -> None:
        """MAX_CONCURRENT_CALLS unset: as many calls as the engines' measured turn allows (before
        the lines open; a harness or `talk` places its own calls and needs no sizing). A probe
        that fails leaves the core count's default, and says so."""
        try:
            cost = await self._local.measure_turn(self.session_config.persona, self.tools)
        except Exception:
            _log.exception(
                "could not time a turn on the engines: %d calls at once, from the core count; "
                "set MAX_CONCURRENT_CALLS",
                self.desk.admission.max_calls,
            )
            return
        target_ms = self.settings.web.turn_target_ms
        calls = calls_for(
            cost, target_s=target_ms / 1000, ceiling=self.settings.sip.pjsua_max_calls - 1
        )
        self.desk.admission.resize(calls)
        await self._local.llm.keep_conversations(calls)
        _log.info(
            "calls at once: %d, sized from one turn measured on the engines: first audio in %.0f "
            "ms, %.0f ms more for each turn at the same moment (speech to text %.0f, model %.0f "
            "to the first sentence and %.0f to the end, voice %.0f), against the %d ms turn "
            "target; MAX_CONCURRENT_CALLS sets it",
            calls,
            cost.first_audio_s * 1000,
            cost.behind_s * 1000,
            cost.stt_s * 1000,
            cost.first_s * 1000,
            cost.reply_s * 1000,
            cost.tts_s * 1000,
            target_ms,
        )

    async def warm_opening(self) -> None:
        """Leave the language model's cache holding every call's opening (the system prompt, the
        tools, the greeting) and nothing after it: the state a caller's first turn starts from.
        Benchmarks call it before each measured call: a call that repeats the last one's words
        would otherwise find them evaluated already."""
        await self._local.warm_opening(self.session_config.persona, self.tools)

    async def _open_records(self, took: dict[str, float]) -> None:
        started = self.clock.now()
        await self.records.start()
        took["records"] = round(self.clock.now() - started, 2)

    # --- calls ----------------------------------------------------------------------------------

    def _desk(self, admission: Admission) -> CallDesk:
        return CallDesk(
            admission, self._session, self.metrics, records=self.records, watchers=self.live
        )

    def _session(
        self,
        line: CallLine,
        sink: EventSink,
        context: Sequence[Message],
        recall: Recall | None,
    ) -> CallSession:
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
            recall=WithFaq(self.faq, recall) if self.faq is not None else recall,
            screen=self.screen,
        )

    # --- lines ----------------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer calls on every configured line until `stop` is set, then hang them all up."""
        notify = self.records.post_call.notify
        for missing in (notify.email_missing, notify.sms_missing):
            if missing is not None:
                _log.warning("%s", missing)
        if self.ready and self.settings.calls.max_concurrent_calls is None:
            await self._size_admission()  # the engines are warm: time one turn on them
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
            names = ["twilio"] if _twilio_ready(self.settings.twilio) else []
            if not names:
                _log.info(
                    "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, BASE_URL): "
                    "no calls come in through Twilio"
                )
            sip_port = None
            if self.settings.sip.sip_enabled:
                sip_port = (await lines.enter_async_context(self.sip_listener())).port
                names.append("sip")
                if not self.desk.admission.has_allowed_sources:
                    _log.warning("SIP_ALLOWED_SOURCES is empty: any address may call this box")
            if self.settings.zeroconf.zeroconf_enabled:
                await lines.enter_async_context(await self.advertisement(server.port, sip_port))
            if self.settings.inference.inference_server:
                await lines.enter_async_context(await self.inference_server())
            if self.settings.local.local_line:
                await lines.enter_async_context(self.local_phone())
                names.append("speakerphone")
            _log.info(
                "ready for calls on %s (at most %d at once)",
                ", ".join(names) or "no line: configure SIP or Twilio in .env",
                self.desk.admission.max_calls,
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
        desk: CallDesk | None = None,
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
        config = sip_config(self.settings, self.desk.admission.max_calls)
        config = replace(
            config,
            bind_address=config.bind_address if bind_address is None else bind_address,
            port=config.port if port is None else port,
            rtp_port=config.rtp_port if rtp_port is None else rtp_port,
            registration=config.registration if register else None,
        )
        return SipListener(
            config,
            desk or self.desk,
            clock=self.clock,
            metrics=self.metrics,
            status=self.sip_status,
            sinks=sinks or (lambda _: None),
            voice=self.engines.tts,
        )

    def local_phone(self, local: LocalSettings | None = None) -> LocalPhone:
        """The speakerphone line from the settings (LOCAL_*, or `local`), answering like a
        phone once entered; raises SoundCardError (the device) or ButtonError (LOCAL_BUTTON)
        naming the fix. The wake phrase is listened for by the local STT only: the room's
        speech never goes to an API engine."""
        from appliance.telephony.local.phone import LocalPhone  # noqa: PLC0415 - PortAudio

        local = local or self.settings.local
        return LocalPhone(
            speakerphone(local, self.metrics),
            self.desk,
            answer=local.answer,
            level_dbfs=local.answer_level_dbfs,
            metrics=self.metrics,
            wake=self._wake_listener(local) if local.answer == "wake" else None,
            button=gpio_button(local) if local.answer == "button" else None,
        )

    def _wake_listener(self, local: LocalSettings) -> WakeListener:
        from appliance.telephony.local.wake import (  # noqa: PLC0415 - PortAudio
            WakeListener,
            WakePhrase,
            default_wake_phrase,
        )

        phrase = local.wake_phrase or default_wake_phrase(self.settings.conversation.agent_name)
        return WakeListener(
            WakePhrase(phrase), self._local.stt, self.engines.vad,
            turn=self.session_config.turn, level_dbfs=local.answer_level_dbfs, clock=self.clock,
        )  # fmt: skip

    def loopback_sip(self, sinks: SinkFactory) -> SipListener:
        """A SIP line on a free loopback port, not registered, open to any local caller at any
        rate (calls are answered as every call is: recorded and listed): the harness calls it."""
        admission = Admission(
            clock=self.clock, max_calls=self.desk.admission.max_calls, rate_limit=0
        )
        return self.sip_listener(
            bind_address="127.0.0.1", port=0, rtp_port=0, desk=self._desk(admission),
            sinks=sinks, register=False,
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
        """The web app (Twilio's webhooks and media streams, the status page) on `host:port`,
        not yet started.

        `twilio` replaces the configured account, `twilio_api_url` points the REST client at
        another server (a fake Twilio), and `observe` watches each Twilio call's events."""
        line = twilio_line(
            self.desk,
            twilio or self.settings.twilio,
            escalation_number=self.settings.integrations.escalation_phone_number,
            clock=self.clock,
            metrics=self.metrics,
            api_url=twilio_api_url,
            observe=observe,
        )
        watched = Watched(
            settings=self.settings,
            clock=self.clock,
            metrics=self.metrics,
            chains=[self.engines.stt, self.engines.llm, self.engines.tts],
            admission=self.desk.admission,
            records=self.records,
            sip_status=self.sip_status,
            live=self.live,
            started_at=lambda: self.started_at,
            ready=lambda: self.ready,
            front=self.front,
            workers=self._local.workers,
        )

        async def on_stop() -> None:
            self.live.close()  # the pages' event streams end, so the server can
            await line.close()

        return WebServer(
            create_app(twilio_router(line.endpoints), *status_routers(watched)),
            host=host,
            port=port,
            on_stop=on_stop,
        )

    async def inference_server(
        self, *, host: str | None = None, port: int | None = None
    ) -> InferenceServer:
        """The LAN inference server over this box's local engines (`INFERENCE_SERVER`), not yet
        started; `host` and `port` override WEB_BIND_ADDRESS and INFERENCE_PORT."""
        return await inference_server(self.settings, self._local, host=host, port=port)

    async def advertisement(self, web_port: int, sip_port: int | None = None) -> Advertisement:
        """The zeroconf advertisement of this box's status page (and SIP line), not yet entered."""
        return await advertisement(self.settings, web_port, sip_port)

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - bounds the joins
        """Stop the engines' worker threads and the records, waiting up to `timeout` for each,
        without blocking the loop."""
        workers = self._local.workers
        stopped = await asyncio.gather(*(worker.aclose(timeout) for worker in workers))
        for worker, done in zip(workers, stopped, strict=True):
            if not done:
                _log.warning("engine worker %s did not stop within %.0f s", worker.name, timeout)
        if self.front.google is not None:
            await self.front.google.aclose()
        await self._local.close_api()
        await self.records.aclose(timeout)


def _twilio_ready(twilio: TwilioSettings) -> bool:
    """Whether Twilio's webhooks can be accepted: the account, its token and the public URL."""
    return bool(twilio.account_sid) and twilio.auth_token is not None and bool(twilio.base_url)


def _session_config(conv: ConversationSettings, persona: Persona) -> SessionConfig:
    return SessionConfig(
        persona=persona,
        turn=TurnConfig(
            endpoint_ms=conv.endpoint_silence_ms, min_speech_ms=conv.turn_min_speech_ms
        ),
        max_history_turns=conv.max_history_turns,
        no_input_timeout_s=conv.no_input_timeout_s,
        max_call_s=conv.max_call_minutes * 60,
        abuse_turns=conv.safety_abuse_turns,
    )
