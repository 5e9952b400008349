"""A phone line over one Twilio Media Streams websocket.

Caller audio arrives as 20 ms of mu-law at 8 kHz per `media` message; it is decoded, resampled to
16 kHz and handed to the session as 20 ms frames through a short queue that drops the oldest frame
(and counts it) when the session falls behind. Agent audio goes the other way, paced in real time:
Twilio never holds more than `lead_frames` of ours, so a `clear` silences the caller's ear at once.
Each frame sent is followed by a `mark` naming its position; Twilio echoes a mark when the audio
before it has played, so the echoes, not the sending, say what the caller heard.

When Twilio receives `clear` it drops its buffer and echoes every pending mark at once, whether it
was played or not. So `clear` answers with the marks echoed before it was sent, and marks carry a
generation that `clear` advances: echoes from before a clear never move the heard position.

The caller's keys (`dtmf` messages) are handed to the session as they come (`Keypad`), and the
line can hand the caller to a person through the REST API (`Transferable`), which ends the
stream: Twilio replaces the call's instructions with a `<Dial>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from appliance.audio.frame import FRAME_BYTES, FRAME_MS, SAMPLE_RATE
from appliance.audio.g711 import ulaw_decode, ulaw_encode
from appliance.audio.halfband import HalfBandResampler
from appliance.clock import Clock
from appliance.conversation.ports import CallInfo, Handoff, KeyPress, TransferError
from appliance.observability.metrics import Metrics
from appliance.telephony.twilio.messages import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    encode_to_twilio,
    parse_from_twilio,
)

__all__ = ["LineConfig", "MessageSocket", "TwilioLine"]

_log = logging.getLogger(__name__)
_TWILIO_RATE = 8000
_FRAME_S = FRAME_MS / 1000.0
_KEYS_HELD = 32
"""Key presses held for the session; beyond it the oldest is dropped (nobody types that fast)."""
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008


class MessageSocket(Protocol):
    """The websocket, as the line needs it (the web layer adapts its framework's socket)."""

    async def receive(self) -> str | bytes | None:
        """The next message; None once the socket is closed."""
        ...

    async def send(self, text: str) -> None:
        """Send one text message; raises ConnectionError once the socket is closed."""
        ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the socket (a no-op when it is closed already)."""
        ...


@dataclass(frozen=True, slots=True)
class LineConfig:
    inbound_frames: int = 25
    """Caller frames held for the session (500 ms); beyond it the oldest is dropped."""
    outbound_frames: int = 3
    """Agent frames queued here before `play` waits."""
    lead_frames: int = 3
    """Agent frames Twilio may hold unplayed: what a `clear` has to throw away."""
    drain_grace_s: float = 2.0
    """`drain` stops waiting for mark echoes after this long without progress."""


Dialer = Callable[[str, Handoff], Awaitable[None]]
"""(call SID, hand-off) -> transfer the live call (the REST API's `<Dial>`); raises
TransferError."""


class TwilioLine:
    """A CallLine over a started Media Stream; `run` carries the call."""

    def __init__(
        self,
        socket: MessageSocket,
        start: Start,
        *,
        info: CallInfo,
        clock: Clock,
        metrics: Metrics | None = None,
        config: LineConfig | None = None,
        dial: Dialer | None = None,
        escalation_number: str | None = None,
    ) -> None:
        self._socket = socket
        self._start = start
        self._info = info
        self._clock = clock
        self._metrics = metrics
        self._config = config or LineConfig()
        self._dial = dial
        self._escalation_number = escalation_number
        self._inbound: asyncio.Queue[bytes | None] = asyncio.Queue(self._config.inbound_frames + 1)
        self._in_pcm = bytearray()
        self._in_rate = HalfBandResampler(_TWILIO_RATE, SAMPLE_RATE)
        self._out_rate = HalfBandResampler(SAMPLE_RATE, _TWILIO_RATE)
        self._outbound: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue(
            self._config.outbound_frames
        )
        self._send_lock = asyncio.Lock()
        self._progress = asyncio.Event()
        self._generation = 0
        self._assigned = 0
        """Position of the next frame `play` accepts."""
        self._heard = 0
        """Frames before this position have played (their marks came back)."""
        self._playout_end = 0.0
        """When Twilio will have played everything sent so far (clock seconds)."""
        self._input_over = False
        self._closed = False
        self._keys: asyncio.Queue[KeyPress | None] = asyncio.Queue(_KEYS_HELD + 1)
        self.digits: list[str] = []
        """DTMF keys the caller pressed, in order."""
        self.ended_by: str = ""
        """Why the stream ended: `stop`, `closed`, `hang-up` or a protocol error."""

    @property
    def info(self) -> CallInfo:
        return self._info

    @property
    def stream_sid(self) -> str:
        return self._start.stream_sid

    # --- carrying the call ----------------------------------------------------------------------

    async def run(self, call: Callable[[TwilioLine], Awaitable[str]]) -> str:
        """Read the socket and pace audio out while `call` (the session) runs; returns its end."""
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(self._read(), name=f"twilio-read-{self._info.call_id}")
            sender = tg.create_task(self._send(), name=f"twilio-send-{self._info.call_id}")
            try:
                return await call(self)
            finally:
                reader.cancel()
                sender.cancel()
                await self._close(CLOSE_NORMAL, "call ended")

    async def _read(self) -> None:
        try:
            while (text := await self._socket.receive()) is not None:
                match parse_from_twilio(text):
                    case Media(payload=payload):
                        self._on_media(payload)
                    case Mark(name=name):
                        self._on_mark(name)
                    case Dtmf(digit=digit):
                        self.digits.append(digit)
                        _log.info("the caller pressed %s", digit)
                        self._put_key(KeyPress(digit=digit, method="twilio"))
                    case Stop():
                        self.ended_by = "stop"
                        return
                    case Connected() | Start():
                        raise ProtocolError("the stream started twice")
            self.ended_by = self.ended_by or "closed"
        except ProtocolError as exc:
            self.ended_by = f"protocol error: {exc}"
            _log.warning("ending the call: %s", exc)
            if self._metrics is not None:
                self._metrics.errors.labels("twilio-protocol").inc()
            await self._close(CLOSE_POLICY, "protocol error")
        finally:
            self._end_input()

    def _on_media(self, payload: bytes) -> None:
        self._in_pcm += self._in_rate.convert(ulaw_decode(payload))
        while len(self._in_pcm) >= FRAME_BYTES:
            frame = bytes(self._in_pcm[:FRAME_BYTES])
            del self._in_pcm[:FRAME_BYTES]
            if self._inbound.full():
                # Late caller audio is worth less than current audio: drop the oldest.
                self._inbound.get_nowait()
                if self._metrics is not None:
                    self._metrics.dropped_frames.labels("twilio", "in").inc()
            self._inbound.put_nowait(frame)

    def _on_mark(self, name: str) -> None:
        generation, _, position = name.partition(".")
        if generation != str(self._generation) or not position.isdigit() or len(position) > 9:
            return  # from before a clear (or not ours): says nothing about what was heard
        self._heard = max(self._heard, min(int(position) + 1, self._assigned))
        self._progress.set()

    def _put_key(self, key: KeyPress | None) -> None:
        if self._keys.full():
            self._keys.get_nowait()
        self._keys.put_nowait(key)

    def _end_input(self) -> None:
        if self._input_over:
            return
        self._input_over = True
        self._put_key(None)
        if self._inbound.full():
            self._inbound.get_nowait()
        self._inbound.put_nowait(None)
        self._progress.set()

    async def _send(self) -> None:
        lead_s = self._config.lead_frames * _FRAME_S
        while True:
            generation, position, frame = await self._outbound.get()
            wait = self._playout_end - self._clock.now() - lead_s
            if wait > 0:
                await self._clock.sleep(wait)
            async with self._send_lock:
                if generation != self._generation or self._closed:
                    continue
                audio = ulaw_encode(self._out_rate.convert(frame))
                try:
                    await self._socket.send(encode_to_twilio(Media(audio), self.stream_sid))
                    mark = Mark(f"{generation}.{position}")
                    await self._socket.send(encode_to_twilio(mark, self.stream_sid))
                except ConnectionError:
                    # The caller is gone; keep taking frames so `play` never waits on a dead line.
                    self._closed = True
                    self._end_input()
                    continue
                self._playout_end = max(self._clock.now(), self._playout_end) + _FRAME_S
            self._progress.set()

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._progress.set()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._socket.close(code, reason)

    # --- CallLine -------------------------------------------------------------------------------

    async def listen(self) -> AsyncIterator[bytes]:
        while not (self._input_over and self._inbound.empty()):
            frame = await self._inbound.get()
            if frame is None:
                return
            yield frame

    async def play(self, frame: bytes) -> int:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        generation = self._generation
        position = self._assigned
        self._assigned += 1
        await self._outbound.put((generation, position, frame))
        return position

    async def clear(self) -> int:
        async with self._send_lock:
            self._generation += 1
            while not self._outbound.empty():
                self._outbound.get_nowait()
            self._assigned = self._heard
            self._out_rate = HalfBandResampler(SAMPLE_RATE, _TWILIO_RATE)
            self._playout_end = self._clock.now()
            if not self._closed:
                with contextlib.suppress(ConnectionError):
                    await self._socket.send(encode_to_twilio(Clear(), self.stream_sid))
        self._progress.set()
        return self._heard

    async def drain(self) -> int:
        while self._heard < self._assigned and not self._closed and not self._input_over:
            self._progress.clear()
            try:
                async with asyncio.timeout(self._config.drain_grace_s):
                    await self._progress.wait()
            except TimeoutError:
                _log.warning(
                    "no mark came back for %.0f s; %d frames unconfirmed",
                    self._config.drain_grace_s,
                    self._assigned - self._heard,
                )
                break
        return self._heard

    async def hang_up(self) -> None:
        self.ended_by = self.ended_by or "hang-up"
        await self._close(CLOSE_NORMAL, "call ended")

    # --- capabilities ---------------------------------------------------------------------------

    async def presses(self) -> AsyncIterator[KeyPress]:
        while (key := await self._keys.get()) is not None:
            yield key

    async def transfer(self, handoff: Handoff) -> None:
        """Hand the call to the person (or the escalation number) through Twilio's REST API;
        the person hears the summary before they are connected."""
        target = handoff.target or self._escalation_number
        if self._dial is None or not target:
            raise TransferError(
                "transfers need TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and ESCALATION_PHONE_NUMBER "
                "(or a person's number)"
            )
        await self._dial(self._start.call_sid, replace(handoff, target=target))
