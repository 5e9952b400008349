"""The harness as Twilio: a scripted caller reaches the appliance through its Twilio endpoints.

`TwilioCaller` does what Twilio does for an incoming call: it posts the signed voice webhook (to
the public URL, delivered to the box's own address as a proxy would), reads the TwiML, opens the
Media Stream with the `<Parameter>`s it was given, and streams the caller's recordings as mu-law in
real time. It plays the agent's audio through a `WavLine` (the caller's ear, on its own 20 ms
clock), echoes each mark once the audio sent before it has played, and on `clear` drops what is
unplayed and echoes every pending mark at once, as Twilio's documentation says it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from appliance.audio.frame import FRAME_BYTES, SAMPLE_RATE
from appliance.audio.g711 import ulaw_decode, ulaw_encode
from appliance.audio.halfband import HalfBandResampler
from appliance.clock import Clock
from appliance.conversation.events import CallEnded, Event, EventSink
from appliance.conversation.ports import CallInfo
from appliance.harness.call import CallReport
from appliance.telephony.twilio.messages import (
    Clear,
    Connected,
    FromTwilio,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    encode_from_twilio,
    parse_to_twilio,
)
from appliance.telephony.wavfile import Step, WavLine

__all__ = ["CallObservers", "StreamRefused", "TwilioCaller", "TwilioTrace"]

_TWILIO_RATE = 8000
_CHUNK = 160
"""Mu-law bytes in one 20 ms media message."""


class StreamRefused(RuntimeError):
    """The appliance did not answer the call with a media stream."""


class CallObservers:
    """Event sinks by call SID: the appliance's `observe` hook, filled in by the caller."""

    def __init__(self) -> None:
        self._sinks: dict[str, EventSink] = {}

    def __call__(self, info: CallInfo) -> EventSink | None:
        return self._sinks.get(info.call_id)

    def add(self, call_sid: str, sink: EventSink) -> None:
        self._sinks[call_sid] = sink

    def remove(self, call_sid: str) -> None:
        self._sinks.pop(call_sid, None)


@dataclass(slots=True)
class TwilioTrace:
    """What the fake Twilio saw of one call."""

    call_sid: str
    stream_sid: str
    twiml: str = ""
    started_at: float | None = None
    """Clock time the first caller frame was sent (tick 0 of the caller's timeline)."""
    clears: list[float] = field(default_factory=list)
    """Clock times each `clear` arrived."""
    played_marks: list[str] = field(default_factory=list)
    """Marks echoed because the audio before them had played."""
    flushed_marks: list[str] = field(default_factory=list)
    """Marks echoed because a `clear` dropped the audio before them."""
    agent_ulaw: bytearray = field(default_factory=bytearray)
    """Every media payload received, as sent (mu-law, 8 kHz)."""
    marked: list[tuple[str, bytes]] = field(default_factory=list)
    """Each mark received, with the mu-law audio sent between it and the mark before."""
    close_code: int | None = None


@dataclass(slots=True)
class _Stream:
    ws: ClientConnection
    line: WavLine
    trace: TwilioTrace
    clock: Clock
    sequence: int = 0
    queued: int = 0
    """Position after the last agent frame handed to the caller's ear."""
    pending: list[tuple[str, int]] = field(default_factory=list)
    """Marks not yet echoed, with the position they wait for."""
    partial: bytearray = field(default_factory=bytearray)
    unmarked: bytearray = field(default_factory=bytearray)
    upsample: HalfBandResampler = field(
        default_factory=lambda: HalfBandResampler(_TWILIO_RATE, SAMPLE_RATE)
    )

    async def send(self, message: FromTwilio) -> None:
        self.sequence += 1
        text = encode_from_twilio(message, stream_sid=self.trace.stream_sid, sequence=self.sequence)
        await self.ws.send(text)


class TwilioCaller:
    """Places scripted calls to the appliance the way Twilio would."""

    def __init__(
        self,
        *,
        server_url: str,
        public_url: str,
        auth_token: str,
        clock: Clock,
        observers: CallObservers,
        account_sid: str = "AC" + "0" * 32,
        callee: str = "+15005550006",
    ) -> None:
        self._server = urlsplit(server_url)
        self._public_url = public_url.rstrip("/")
        self._validator = RequestValidator(auth_token)
        self._clock = clock
        self._observers = observers
        self._account_sid = account_sid
        self._callee = callee
        self.traces: dict[str, TwilioTrace] = {}

    async def call(
        self, steps: Sequence[Step], info: CallInfo | None = None, *, max_call_s: float = 300.0
    ) -> CallReport:
        """Play one call through the appliance's Twilio endpoints and report it."""
        call_sid, stream_sid = "CA" + secrets.token_hex(16), "MZ" + secrets.token_hex(16)
        caller = info.caller if info is not None else "+15005550001"
        line = WavLine(
            steps,
            clock=self._clock,
            info=CallInfo(
                call_id=call_sid, line="twilio", caller=caller, callee=self._callee, vouched=True
            ),
            queue_frames=100,
            max_call_s=max_call_s,
        )
        report = CallReport(line=line)
        trace = self.traces.setdefault(call_sid, TwilioTrace(call_sid, stream_sid))
        ended = asyncio.Event()

        def sink(event: Event) -> None:
            line.observe(event)
            report.events.append(event)
            if isinstance(event, CallEnded):
                report.ended = event.reason
                ended.set()

        self._observers.add(call_sid, sink)
        try:
            url, parameters = await self.webhook(call_sid, caller, trace)
            await self._stream(url, parameters, line, trace)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await ended.wait()
        except StreamRefused as refused:
            report.ended = f"refused: {refused}"
        except (OSError, httpx.HTTPError, WebSocketException) as exc:
            report.ended = f"failed: {exc}"
        finally:
            self._observers.remove(call_sid)
        return report

    async def webhook(
        self, call_sid: str, caller: str, trace: TwilioTrace
    ) -> tuple[str, dict[str, str]]:
        """Post the signed voice webhook; returns the stream URL and its parameters."""
        params = {
            "AccountSid": self._account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": caller,
            "To": self._callee,
        }
        signature = self._validator.compute_signature(f"{self._public_url}/twilio/voice", params)
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(
                self._local("/twilio/voice"),
                data=params,
                headers={"X-Twilio-Signature": signature},
            )
        if response.status_code != 200:
            raise StreamRefused(f"HTTP {response.status_code}")
        trace.twiml = response.text
        root = ET.fromstring(response.text)  # noqa: S314 - the appliance under test wrote it
        reject = root.find("Reject")
        if reject is not None:
            raise StreamRefused(f"rejected ({reject.get('reason', '')})")
        stream = root.find("Connect/Stream")
        if stream is None or not stream.get("url"):
            raise StreamRefused("no <Connect><Stream> in the answer")
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        return str(stream.get("url")), parameters

    def _local(self, path: str, *, websocket: bool = False) -> str:
        """`path` on the box's own address (what a reverse proxy in front of it does)."""
        scheme = ("wss" if self._server.scheme == "https" else "ws") if websocket else None
        return urlunsplit((scheme or self._server.scheme, self._server.netloc, path, "", ""))

    async def _stream(
        self, url: str, parameters: dict[str, str], line: WavLine, trace: TwilioTrace
    ) -> None:
        target = urlsplit(url)
        local = self._local(target.path, websocket=True)
        async with connect(local, max_size=2**20) as ws:
            stream = _Stream(ws=ws, line=line, trace=trace, clock=self._clock)
            await stream.send(Connected())
            await stream.send(
                Start(
                    stream_sid=trace.stream_sid,
                    call_sid=trace.call_sid,
                    account_sid=self._account_sid,
                    custom_parameters=parameters,
                )
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_speak(stream, self._account_sid), name="twilio-caller-speak")
                tg.create_task(_hear(stream), name="twilio-caller-hear")
            trace.close_code = ws.close_code


async def _speak(stream: _Stream, account_sid: str) -> None:
    """Stream the caller's side in real time; echo marks as their audio plays."""
    downsample = HalfBandResampler(SAMPLE_RATE, _TWILIO_RATE)
    pending = bytearray()
    chunk = 0
    try:
        async for frame in stream.line.listen():
            if stream.trace.started_at is None:
                stream.trace.started_at = stream.clock.now()
            await _echo_played(stream)
            pending += ulaw_encode(downsample.convert(frame))
            while len(pending) >= _CHUNK:
                chunk += 1
                payload = bytes(pending[:_CHUNK])
                del pending[:_CHUNK]
                await stream.send(Media(payload, chunk=chunk, timestamp_ms=(chunk - 1) * 20))
        await stream.send(Stop(call_sid=stream.trace.call_sid, account_sid=account_sid))
        await stream.ws.close()
    except ConnectionClosed:
        pass  # the appliance ended the stream


async def _echo_played(stream: _Stream) -> None:
    while stream.pending and stream.pending[0][1] <= stream.line.heard:
        name, _ = stream.pending.pop(0)
        stream.trace.played_marks.append(name)
        await stream.send(Mark(name))


async def _hear(stream: _Stream) -> None:
    """Take the appliance's messages: audio to the caller's ear, marks queued, clears obeyed."""
    try:
        async for text in stream.ws:
            try:
                message = parse_to_twilio(text)
            except ProtocolError:
                await stream.ws.close(1008, "protocol error")
                break
            match message:
                case Media(payload=payload):
                    stream.trace.agent_ulaw += payload
                    stream.unmarked += payload
                    stream.partial += stream.upsample.convert(ulaw_decode(payload))
                    while len(stream.partial) >= FRAME_BYTES:
                        frame = bytes(stream.partial[:FRAME_BYTES])
                        del stream.partial[:FRAME_BYTES]
                        stream.queued = await stream.line.play(frame) + 1
                case Mark(name=name):
                    stream.pending.append((name, stream.queued))
                    stream.trace.marked.append((name, bytes(stream.unmarked)))
                    stream.unmarked.clear()
                case Clear():
                    stream.trace.clears.append(stream.clock.now())
                    stream.queued = await stream.line.clear()
                    stream.partial.clear()
                    stream.unmarked.clear()
                    stream.upsample = HalfBandResampler(_TWILIO_RATE, SAMPLE_RATE)
                    flushed, stream.pending = stream.pending, []
                    for name, _ in flushed:
                        stream.trace.flushed_marks.append(name)
                        await stream.send(Mark(name))
    except ConnectionClosed:
        pass
    await stream.line.hang_up()
