"""`LocalLine`: the CallLine of one conversation with a person at the box's speakerphone.

The sound card's audio thread meets the loop in a `CallMedia` (the SIP line's two bounded
buffers: the caller's frames drop the oldest when the loop falls behind and count it; the
agent's wait for room, so they are paced by the card's own clock, and `clear` empties them for
a barge-in). A frame counts as heard once the card has taken it to play (its output latency,
tens of milliseconds, still lies ahead). There is no hang-up from the person's side: the
conversation ends when the agent ends it, or when `end()` is called (Ctrl-C in `appliance
talk`, or the box stopping).

The microphone hears the loudspeaker, so the line is `Echoing`: speech over the agent holds its
audio until the session knows whether it was a person or the canceller's leak (ports.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from appliance.audio.frame import FRAME_BYTES
from appliance.conversation.ports import CallInfo
from appliance.observability.metrics import Metrics
from appliance.telephony.sip.media import CallMedia

__all__ = ["LocalLine"]

_ECHO_MARGIN_FRAMES = 3
"""Frames past the echo's measured reach before speech is taken for a person's: the room's
last reflections, and a voice activity detector that still says "speech" a frame or two after
it stopped (Silero's windows are 32 ms)."""


class LocalLine:
    """A CallLine over the box's own speaker and microphone."""

    def __init__(
        self,
        info: CallInfo,
        media: CallMedia,
        *,
        metrics: Metrics | None = None,
        heard_before: Iterable[bytes] = (),
        echo_frames: Callable[[], int] = lambda: 10,
    ) -> None:
        self._info = info
        self.media = media
        self.echo_frames = echo_frames
        """How many microphone frames after a frame is played its echo may still arrive (the
        sound card measures it: `SoundCard.echo_frames`; `converse` connects the two)."""
        self._metrics = metrics
        self._reported_drops = 0
        self._preroll = 0
        """Frames heard before the conversation began (the words that woke the line)."""
        self._listened = 0
        """Frames `listen()` has handed out."""
        for frame in heard_before:  # the words that woke the line are the conversation's first
            media.inbound.push(frame)
            self._preroll += 1

    @property
    def info(self) -> CallInfo:
        return self._info

    def end(self) -> None:
        """The person is done (or the box stops): `listen()` ends (loop thread)."""
        self.media.end()
        self._count_drops()

    # --- CallLine -------------------------------------------------------------------------------

    async def listen(self) -> AsyncIterator[bytes]:
        media, ring = self.media, self.media.inbound
        while True:
            frame = ring.pop()
            if frame is None:
                if media.ended:
                    return
                media.arrived.clear()
                if len(ring) == 0 and not media.ended:
                    await media.arrived.wait()
                continue
            if ring.dropped != self._reported_drops:
                self._count_drops()
            self._listened += 1
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
        await asyncio.sleep(0)  # the conversation is over; yield so its end can be seen
        return out.heard + len(out)

    async def clear(self) -> int:
        return self.media.outbound.clear()

    async def drain(self) -> int:
        out = self.media.outbound
        await self.media.wait_for(lambda: len(out) == 0)
        return out.heard

    async def hang_up(self) -> None:
        self.end()

    # --- Echoing ----------------------------------------------------------------------------

    def hold(self) -> int:
        if self._listened <= self._preroll:
            # Speech in the words that woke the line, heard before the agent said anything:
            # the person's, whatever is playing now. Nothing is held.
            return 0
        self.media.held = True
        # The frames already waiting were heard before the hold took effect.
        return len(self.media.inbound) + self.echo_frames() + _ECHO_MARGIN_FRAMES

    def release(self) -> None:
        self.media.held = False

    def _count_drops(self) -> None:
        dropped = self.media.inbound.dropped
        if self._metrics is not None and dropped > self._reported_drops:
            self._metrics.dropped_frames.labels("local", "in").inc(dropped - self._reported_drops)
        self._reported_drops = dropped
