"""Real SIP on loopback for the tests: sipp runs, raw SIP requests, and a listener with fakes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from appliance.audio.frame import FRAME_MS, frames_of, rms_dbfs, silence
from appliance.clock import LoopClock
from appliance.conversation.events import DtmfReceived, Event, EventSink
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallInfo, CallLine, Keypad, TextToSpeech
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import Tool, ToolRegistry
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import Admission, CallDesk
from appliance.telephony.sip import SipConfig
from appliance.telephony.sip.listener import SipListener
from tests.support.calls import PERSONA
from tests.support.fakes import (
    ScriptedLanguageModel,
    ToneSpeechToText,
    ToneTextToSpeech,
    tone,
)

SIP_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sip"
LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_DGRAM, *, pair: bool = False) -> int:
    """A port the system says is free now (`pair`: an even one whose +1 and +2 are free too)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((LOOPBACK, 0))
            port: int = probe.getsockname()[1]
        if not pair:
            return port
        if port % 2 == 0 and port < 65000 and all(_free(port + i) for i in (1, 2, 3)):
            return port
    raise RuntimeError("no free port")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@dataclass
class SippRun:
    returncode: int
    messages: str
    """Every SIP message sipp sent and received (its -trace_msg log)."""
    screen: str

    def responses(self) -> list[int]:
        """Status codes sipp received, in order."""
        return [int(code) for code in re.findall(r"^SIP/2\.0 (\d{3})", self.messages, re.M)]

    def received(self, method: str) -> int:
        """How many `method` requests sipp received."""
        return len(re.findall(rf"received.*\n\n{method} ", self.messages))


async def run_sipp(
    port: int,
    *args: str,
    scenario: str = "uac",
    work_dir: Path,
    limit_s: float = 60.0,
    service: str = "tel3sis",
    local_port: int | None = None,
    local_ip: str = LOOPBACK,
) -> SippRun:
    """Run sipp against 127.0.0.1:`port` until it finishes; `scenario` is built in or a file."""
    tag = uuid.uuid4().hex[:8]
    messages = work_dir / f"sipp-{tag}-messages.log"
    screen = work_dir / f"sipp-{tag}-screen.log"
    which = ["-sf", scenario] if scenario.endswith(".xml") else ["-sn", scenario]
    command = [
        "sipp", *which, f"{LOOPBACK}:{port}", "-i", local_ip, "-s", service,
        "-p", str(local_port or free_port()), "-mp", str(free_port(pair=True)), "-nostdin",
        "-trace_msg", "-message_file", str(messages),
        "-trace_screen", "-screen_file", str(screen),
        "-timeout", f"{int(limit_s)}s", "-timeout_error", *args,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=SIP_FIXTURES,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode is not None
    read = lambda path: path.read_text(errors="replace") if path.exists() else ""  # noqa: E731
    return SippRun(process.returncode, read(messages), read(screen) + err.decode(errors="replace"))


class RawSip:
    """One UDP socket speaking raw SIP at a listener: for malformed and hand-made requests."""

    def __init__(self, port: int, *, source: str = LOOPBACK) -> None:
        self.port = port
        self.source = source
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.local_port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    async def send(self, message: str | bytes, *, wait: float = 1.0) -> list[str]:
        """Send one datagram; return every reply that comes within `wait` seconds."""
        data = message.encode() if isinstance(message, str) else message
        self.sock.sendto(data, (LOOPBACK, self.port))
        return await self.listen(wait)

    async def listen(self, seconds: float) -> list[str]:
        """Every datagram that arrives within `seconds`."""
        replies: list[str] = []
        deadline = time.monotonic() + seconds
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    reply = await loop.sock_recv(self.sock, 65535)
            except TimeoutError:
                break
            replies.append(reply.decode(errors="replace"))
        return replies

    async def flood(self, messages: Sequence[str], *, spacing_s: float) -> list[str]:
        """Send `messages` `spacing_s` apart, then listen 1 s more; every reply received."""
        replies: list[str] = []
        loop = asyncio.get_running_loop()

        async def read() -> None:
            while True:
                replies.append((await loop.sock_recv(self.sock, 65535)).decode(errors="replace"))

        reader = asyncio.create_task(read())
        for message in messages:
            self.sock.sendto(message.encode(), (LOOPBACK, self.port))
            await asyncio.sleep(spacing_s)
        await asyncio.sleep(1.0)
        reader.cancel()
        return replies

    def invite(self, call_id: str, *, payload_types: str = "0", extra: str = "") -> str:
        sdp = (
            f"v=0\r\no=- 1 1 IN IP4 {self.source}\r\ns=-\r\nc=IN IP4 {self.source}\r\nt=0 0\r\n"
            f"m=audio {free_port(pair=True)} RTP/AVP {payload_types}\r\n"
        )
        return (
            f"INVITE sip:tel3sis@{LOOPBACK}:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.source}:{self.local_port};branch=z9hG4bK{call_id}\r\n"
            f"From: <sip:raw@{self.source}>;tag=t{call_id}\r\n"
            f"To: <sip:tel3sis@{LOOPBACK}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:raw@{self.source}:{self.local_port}>\r\nMax-Forwards: 70\r\n{extra}"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        )


def status_codes(replies: Sequence[str]) -> list[int]:
    return [int(r.split(" ", 2)[1]) for r in replies if r.startswith("SIP/2.0 ")]


def final_codes(replies: Sequence[str]) -> dict[str, int]:
    """The final status code each Call-ID got (retransmissions counted once)."""
    finals: dict[str, int] = {}
    for reply in replies:
        found = re.search(r"^Call-ID: *(\S+)", reply, re.M | re.I)
        code = status_codes([reply])
        if found and code and code[0] >= 200:
            finals[found.group(1)] = code[0]
    return finals


@dataclass
class Probe:
    """A stand-in for CallSession that plays a tone pattern and records what it hears.

    The router only calls `run()`; this is the line's consumer in tests about SIP mechanics.
    """

    line: CallLine
    tone_hz: float = 1000.0
    pattern_ms: tuple[int, int] = (200, 300)
    """Tone on, then silence, repeated."""
    action: Callable[[CallLine], Coroutine[Any, Any, None]] | None = None
    sink: EventSink | None = None
    """Told of the keys the caller presses, as a session tells its observers."""
    heard: list[bytes] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    played: int = 0

    async def run(self) -> str:
        async with asyncio.TaskGroup() as tg:
            speaker = tg.create_task(self._speak())
            keys = tg.create_task(self._keys())
            if self.action is not None:
                tg.create_task(self.action(self.line))
            async for frame in self.line.listen():
                self.heard.append(frame)
                self.arrivals.append(time.monotonic())
            speaker.cancel()
            keys.cancel()
        return "caller hung up"

    async def _keys(self) -> None:
        if not isinstance(self.line, Keypad):
            return
        async for key in self.line.presses():
            if self.sink is not None:
                self.sink(DtmfReceived(digit=key.digit, method=key.method, at=time.monotonic()))

    async def _speak(self) -> None:
        on, off = (ms // FRAME_MS for ms in self.pattern_ms)
        burst = list(frames_of(tone(self.tone_hz, on * FRAME_MS, level=0.3)))
        while True:
            for frame in [*burst, *([silence()] * off)]:
                await self.line.play(frame)
                self.played += 1

    def loud_frames(self, threshold_dbfs: float = -35.0) -> int:
        return sum(rms_dbfs(frame) > threshold_dbfs for frame in self.heard)

    def longest_gap_s(self) -> float:
        gaps = [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]
        return max(gaps, default=0.0)


@dataclass
class FakeCalls:
    """A listener whose calls run the scripted fake engines, in real time."""

    listener: SipListener
    admission: Admission
    metrics: Metrics
    sessions: list[Any] = field(default_factory=list)
    """CallSessions, or Probes when the listener was made with `probe=True`."""
    events: dict[str, list[Event]] = field(default_factory=dict)
    """Every event of every call, by call id."""

    @property
    def port(self) -> int:
        return self.listener.port

    def all_events(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for events in self.events.values() for e in events if isinstance(e, kind)]

    async def settled(self, within_s: float = 5.0) -> int:
        """The calls still holding a slot once every ended call has given its slot back (the
        caller's side sees its BYE answered a moment before the session has finished)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while self.admission.active:  # noqa: ASYNC110 - a plain counter, no event
                    await asyncio.sleep(0.01)
        return self.admission.active


@contextlib.asynccontextmanager
async def fake_listener(
    *,
    admission: Callable[[LoopClock], Admission] | None = None,
    config: SipConfig | None = None,
    replies: Sequence[str] = (),
    tools: Sequence[Tool] = (),
    session_config: SessionConfig | None = None,
    probe: Callable[[CallLine], Probe] | None = None,
    record: bool = True,
    voice: TextToSpeech | None = None,
    rtp_port: int = 0,
) -> AsyncIterator[FakeCalls]:
    """A SipListener on an ephemeral loopback port, answering with scripted fake engines
    (or with `probe(line)` for each call, when given). `record=False` keeps no sessions and
    no events (for memory measurements); `voice` speaks hand-off summaries (attended transfers);
    `rtp_port`: the first RTP port (the range is the config's; 0: the system picks)."""
    clock = LoopClock()
    metrics = Metrics()
    gate = admission(clock) if admission is not None else Admission(clock=clock, max_calls=4)
    llm = ScriptedLanguageModel(clock, replies=list(replies))
    tts = ToneTextToSpeech(clock)
    engines = Engines(stt=ToneSpeechToText(clock), llm=llm, tts=tts, vad=EnergyVoiceActivity())
    phrases = PhraseCache(tts)
    sessions: list[Any] = []
    events: dict[str, list[Event]] = {}

    def new_session(line: CallLine, sink: EventSink | None) -> Any:
        if probe is not None:
            made = probe(line)
            made.sink = sink
            if record:
                sessions.append(made)
            return made
        session = CallSession(
            line,
            engines,
            session_config or SessionConfig(persona=PERSONA),
            tools=ToolRegistry(tools),
            phrases=phrases,
            clock=clock,
            sink=sink,
            metrics=metrics,
        )
        if record:
            sessions.append(session)
        return session

    def sink_for(info: CallInfo) -> EventSink | None:
        return events.setdefault(info.call_id, []).append if record else None

    base = config or SipConfig()
    sip = replace(base, bind_address=LOOPBACK, port=0, rtp_port=rtp_port, max_calls=gate.max_calls)
    router = CallDesk(gate, lambda line, sink, _, __: new_session(line, sink), metrics)
    listener = SipListener(sip, router, clock=clock, metrics=metrics, sinks=sink_for, voice=voice)
    async with listener:
        yield FakeCalls(listener, gate, metrics, sessions, events)
