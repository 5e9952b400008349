"""The audio between pjsua2's media clock thread and the event loop: two bounded buffers.

pjsua2 calls a call's media port every 20 ms on its clock thread: it hands over the caller's
frame and asks for the agent's. Those callbacks only copy bytes into or out of the buffers
here and return. Inbound (caller to agent): a `FrameRing` that drops the oldest frame when the
loop falls behind (late audio is worth less than current audio) and counts what it dropped.
Outbound (agent to caller): `Outbound`, which never drops; the loop waits for room, which paces
the agent's audio in real time, and `clear` empties it for a barge-in. Frames the clock thread
took from it are what the caller heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable

from appliance.audio.frame import FRAME_BYTES
from appliance.audio.ring import FrameRing

__all__ = ["CallMedia", "Outbound"]


class Outbound:
    """The agent's frames waiting for the media clock; positions count frames since the start."""

    __slots__ = ("_frames", "_heard", "_lock", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._frames: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._heard = 0

    def push(self, frame: bytes) -> int | None:
        """Queue a frame and return its position; None (nothing queued) when full."""
        with self._lock:
            if len(self._frames) >= self.capacity:
                return None
            self._frames.append(frame)
            return self._heard + len(self._frames) - 1

    def pull(self) -> bytes | None:
        """The next frame for the caller (it counts as heard), or None when there is none."""
        with self._lock:
            if not self._frames:
                return None
            self._heard += 1
            return self._frames.popleft()

    def clear(self) -> int:
        """Drop every frame not yet heard; returns the position heard up to."""
        with self._lock:
            self._frames.clear()
            return self._heard

    @property
    def heard(self) -> int:
        return self._heard

    def __len__(self) -> int:
        return len(self._frames)


class CallMedia:
    """One call's two buffers and the doorbells that wake the loop when they change.

    The clock thread calls `received` and `requested`; everything else runs on the loop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        inbound_frames: int = 50,
        outbound_frames: int = 8,
    ) -> None:
        self._loop = loop
        self.inbound = FrameRing(inbound_frames)
        self.outbound = Outbound(outbound_frames)
        self.arrived = asyncio.Event()
        """Set (on the loop) when a caller frame arrives or the call ends."""
        self.room = asyncio.Event()
        """Set (on the loop) when the clock thread takes an agent frame or the call ends."""
        self._want_room = False
        self.frames_in = 0
        self.ended = False
        self.held = False
        """While set, the clock thread plays silence and leaves the agent's frames queued."""

    # --- the media clock thread -----------------------------------------------------------------

    def received(self, pcm: bytes) -> None:
        """A caller frame (16 kHz PCM16) from the clock thread."""
        if len(pcm) != FRAME_BYTES:
            pcm = (pcm + bytes(FRAME_BYTES))[:FRAME_BYTES]
        self.inbound.push(pcm)
        self.frames_in += 1
        self._ring(self.arrived.set)

    def requested(self) -> bytes | None:
        """The agent frame to send now, or None for silence (clock thread)."""
        if self.held:
            return None
        frame = self.outbound.pull()
        if frame is not None and self._want_room:
            self._want_room = False
            self._ring(self.room.set)
        return frame

    def _ring(self, bell: Callable[[], None]) -> None:
        # RuntimeError: the loop has closed, and nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(bell)

    # --- the loop -------------------------------------------------------------------------------

    def end(self) -> None:
        """The call is over: wake everyone waiting (loop thread)."""
        self.ended = True
        self.arrived.set()
        self.room.set()

    async def wait_for(self, ready: Callable[[], bool]) -> None:
        """Wait until `ready()` (a condition on the outbound buffer) holds or the call ends."""
        while not ready() and not self.ended:
            self.room.clear()
            self._want_room = True
            # The clock thread takes a frame, then looks at the flag; we set the flag, then look
            # at the buffer again: whichever comes second sees the other, so no wake-up is lost.
            if ready():
                return
            await self.room.wait()
