"""`SipLine`: the CallLine port over one SIP call, on the event loop's side.

Audio crosses to the media clock thread through `CallMedia` (see media.py): `listen()` yields
the caller's 20 ms frames as the clock delivers them and ends when the call does; `play()` waits
while the short outbound buffer is full, so the agent's audio is paced by the call's own clock;
a frame counts as heard once the clock thread has taken it to send (the network and the
caller's jitter buffer still lie ahead, ~40-100 ms). Hanging up and transferring are commands to
the endpoint's owner thread. The line can also transfer the caller (`Transferable`: attended,
with the summary spoken to the person, where it can; else a blind REFER) and hands the session
the keys the caller presses (`Keypad`).

`listen()` ends when the caller hangs up, or when the listener `disconnect()`s the call (at
shutdown). When the session itself hangs up, `listen()` stays open until the session is done
with it: the session ends the call with its own reason ("no input", "agent ended the call"),
not with the "caller hung up" that a closing stream would tell it. When the endpoint ends the
call itself (no audio from the caller, no ACK), `lost_because` tells the session why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol, assert_never

from appliance.audio.frame import FRAME_BYTES
from appliance.clock import Clock
from appliance.conversation.events import EventSink
from appliance.conversation.ports import CallInfo, Handoff, KeyPress, TextToSpeech, TransferError
from appliance.observability.metrics import Metrics
from appliance.telephony.sip.attended import Consulting, Outcome, attended_transfer
from appliance.telephony.sip.calltable import NO_ACK, NO_AUDIO
from appliance.telephony.sip.media import CallMedia

__all__ = ["LineControl", "SipLine"]

_log = logging.getLogger(__name__)
_KEYS_HELD = 32
"""Key presses held for the session; beyond it the oldest is dropped (nobody types that fast)."""


class LineControl(Consulting, Protocol):
    """What a line asks of the endpoint (`SipEndpoint` is one)."""

    async def transfer(self, key: int, target: str) -> bool: ...


class SipLine:
    """A CallLine over one SIP call (incoming or, for the harness, outgoing)."""

    def __init__(
        self,
        info: CallInfo,
        *,
        key: int,
        media: CallMedia,
        control: LineControl,
        clock: Clock,
        metrics: Metrics | None = None,
        transfer_to: str = "",
        refer_domain: str = "",
        transfer_timeout_s: float = 20.0,
        voice: TextToSpeech | None = None,
        attended: bool = False,
    ) -> None:
        self._info = info
        self.key = key
        self.media = media
        self._control = control
        self._clock = clock
        self._metrics = metrics
        self._transfer_to = transfer_to
        self._refer_domain = refer_domain
        self._transfer_timeout = transfer_timeout_s
        self._voice = voice
        self._attended = attended and voice is not None
        self._hung_up = False
        self._released = asyncio.Event()
        self._reported_drops = 0
        self._keys: asyncio.Queue[KeyPress | None] = asyncio.Queue(_KEYS_HELD + 1)
        self.sink: EventSink | None = None
        """Who watches the call's events (given to the router when the call is handed over)."""
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason = ""

    @property
    def info(self) -> CallInfo:
        return self._info

    @property
    def lost_because(self) -> str | None:
        """LineLoss: why the endpoint ended the call itself (its audio or its ACK never came)."""
        return self.end_reason if self.end_reason in (NO_AUDIO, NO_ACK) else None

    # --- CallLine -------------------------------------------------------------------------------

    async def listen(self) -> AsyncIterator[bytes]:
        media = self.media
        ring = media.inbound
        while True:
            frame = ring.pop()
            if frame is None:
                if media.ended:
                    if self._hung_up:
                        await self._released.wait()
                    return
                media.arrived.clear()
                if len(ring) == 0 and not media.ended:
                    await media.arrived.wait()
                continue
            if ring.dropped != self._reported_drops:
                self._count_drops()
            yield frame

    async def play(self, frame: bytes) -> int:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        out = self.media.outbound
        while not self.media.ended:
            position = out.push(frame)
            if position is not None:
                return position
            await self.media.wait_for(lambda: len(out) < out.capacity)
        # The call is over: the frame goes nowhere. Yield all the same, or a speaker that plays
        # until it is cancelled would hold the loop and never let the end of the call be seen.
        await asyncio.sleep(0)
        return out.heard + len(out)

    async def clear(self) -> int:
        return self.media.outbound.clear()

    async def drain(self) -> int:
        out = self.media.outbound
        await self.media.wait_for(lambda: len(out) == 0)
        return out.heard

    async def hang_up(self) -> None:
        if self._hung_up or self.media.ended:
            return
        self._hung_up = True
        await self._send_hang_up()

    async def disconnect(self) -> None:
        """End the call from our side and let `listen()` end too (the listener's hang-up)."""
        self._released.set()
        if not self._hung_up and not self.media.ended:
            self._hung_up = True
            await self._send_hang_up()

    async def _send_hang_up(self) -> None:
        try:
            await self._control.hang_up(self.key)
        except (LookupError, RuntimeError) as exc:
            _log.info("hang-up: the call had already gone (%s)", exc)

    # --- Transferable ---------------------------------------------------------------------------

    async def transfer(self, handoff: Handoff) -> None:
        """Hand the caller to the person (or the escalation number); raises TransferError when
        it cannot, and the call goes on with the agent.

        Attended where the line may (`attended`, a voice, and a caller's side that supports
        Replaces): a consult call to the person, who hears `handoff.summary` spoken, then a
        REFER with Replaces; if the person does not answer (busy, unavailable, declined, rings
        out) it raises, so that the agent takes a message. If the consult call cannot be
        placed, or the caller's side refuses or cannot complete the REFER with Replaces, the
        line falls back to a blind REFER, where the person is not told the summary (the
        hand-off tool texts it to them). Either way, once the transferee reports the new call
        answered, we hang up."""
        target = handoff.target or self._transfer_to
        if not target:
            raise TransferError("SIP transfers need ESCALATION_PHONE_NUMBER or a person's number")
        uri = self._refer_uri(target)
        if self._attended:
            outcome, why = await self._attended_transfer(uri, handoff.summary)
            match outcome:
                case Outcome.CONNECTED:
                    _log.info("transferred to %s (attended)", uri)
                    await self.disconnect()
                    return
                case Outcome.NOT_ANSWERED:
                    raise TransferError(f"the transfer to {uri} was not answered: {why}")
                case Outcome.UNSUPPORTED:
                    _log.info("attended transfer to %s not possible (%s): a blind REFER", uri, why)
                case _:
                    assert_never(outcome)
        await self._blind_transfer(uri)

    async def _attended_transfer(self, uri: str, summary: str) -> tuple[Outcome, str]:
        """The attended attempt, given up (consult call and all) if the caller hangs up."""
        assert self._voice is not None
        work = asyncio.ensure_future(
            attended_transfer(
                self._control, self.key, uri, summary=summary, voice=self._voice,
                ring_s=self._transfer_timeout, outcome_s=self._transfer_timeout,
            )
        )  # fmt: skip
        gone = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait([work, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()  # its own clean-up hangs the consult call up
                await asyncio.wait([work])
        if work.cancelled():
            raise TransferError(f"the caller hung up during the transfer to {uri}")
        return work.result()

    async def _blind_transfer(self, uri: str) -> None:
        try:
            async with asyncio.timeout(self._transfer_timeout):
                done = await self._control.transfer(self.key, uri)
        except TimeoutError:
            raise TransferError(
                f"no outcome of the transfer to {uri} within {self._transfer_timeout:.0f} s"
            ) from None
        except (LookupError, RuntimeError) as exc:
            raise TransferError(f"the transfer to {uri} failed: {exc}") from exc
        if not done:
            raise TransferError(f"the transfer to {uri} was refused or not answered")
        _log.info("transferred to %s", uri)
        await self.disconnect()

    def _refer_uri(self, target: str) -> str:
        if target.startswith(("sip:", "sips:", "tel:")):
            return target
        return f"sip:{target}@{self._refer_domain}" if self._refer_domain else f"sip:{target}"

    # --- from the endpoint (loop thread) --------------------------------------------------------

    def on_answered(self) -> None:
        self.answered.set()

    def on_ended(self, reason: str) -> None:
        self.end_reason = reason
        self.media.end()
        self.ended.set()
        self._count_drops()
        self._put_key(None)

    def on_dtmf(self, digit: str, method: str) -> None:
        _log.info("DTMF %s (%s)", digit, method)
        if not self.media.ended:
            self._put_key(KeyPress(digit=digit, method=method))

    def _put_key(self, key: KeyPress | None) -> None:
        if self._keys.full():
            self._keys.get_nowait()
        self._keys.put_nowait(key)

    # --- Keypad ---------------------------------------------------------------------------------

    async def presses(self) -> AsyncIterator[KeyPress]:
        while (key := await self._keys.get()) is not None:
            yield key

    def _count_drops(self) -> None:
        dropped = self.media.inbound.dropped
        if self._metrics is not None and dropped > self._reported_drops:
            self._metrics.dropped_frames.labels("sip", "in").inc(dropped - self._reported_drops)
        self._reported_drops = dropped
