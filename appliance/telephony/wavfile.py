"""A phone line whose caller is a script of recordings: the offline harness and `appliance call`.

The line keeps its own 20 ms media clock, like a real one: each tick it hands the session one
caller frame and takes one agent frame off a short outbound queue (silence when it is empty).
Frames taken off that queue are what the caller heard; `clear` empties it, so a barge-in is
audible within one tick. The caller follows a script (`script.CallerScript`): speak a recording
once the agent has been quiet for a moment (or part-way into the agent's reply, to barge in),
and hang up when the conversation is over; here the agent is speaking while its queue has
frames. Both sides and a timeline are kept for the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from appliance.audio.frame import FRAME_BYTES, FRAME_MS, silence
from appliance.audio.wav import WavAudio, decode_wav
from appliance.clock import Clock
from appliance.conversation.events import Event
from appliance.conversation.ports import CallInfo
from appliance.telephony.script import CallerScript, HangUp, LineEvent, Speak, Step

__all__ = ["HangUp", "LineEvent", "Speak", "Step", "WavLine", "load_wav"]

_TICK = FRAME_MS / 1000.0


def load_wav(path: Path) -> WavAudio:
    """Read and convert a WAV file; raises WavFormatError (or OSError) with the path in it."""
    return decode_wav(path.read_bytes(), name=str(path))


class WavLine:
    """A CallLine over WAV audio, in real time on its own 20 ms clock."""

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        clock: Clock,
        info: CallInfo | None = None,
        queue_frames: int = 5,
        max_wait_s: float = 60.0,
        max_call_s: float = 300.0,
    ) -> None:
        self._clock = clock
        self._info = info or CallInfo(call_id="wav-call", line="wav", caller="wav")
        self._script = CallerScript(steps, max_wait_s=max_wait_s)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_frames)
        self._max_ticks = int(max_call_s / _TICK)
        self._heard = 0
        self._hung_up = False

    @property
    def info(self) -> CallInfo:
        return self._info

    @property
    def agent_audio(self) -> list[bytes]:
        """One agent frame per tick (silence when it said nothing): the caller's ear."""
        return self._script.recording.agent_audio

    @property
    def caller_audio(self) -> list[bytes]:
        return self._script.recording.caller_audio

    @property
    def timeline(self) -> list[LineEvent]:
        return self._script.recording.timeline

    def observe(self, event: Event) -> None:
        """The session's own event: the caller waits on it, not only on silence."""
        self._script.observe(event)

    def write_agent_wav(self, path: Path) -> None:
        """The agent's side of the whole call, time-aligned, as a 16 kHz mono WAV."""
        self._script.recording.write_agent_wav(path)

    @property
    def heard(self) -> int:
        """Agent frames played to the caller so far: positions below this were heard."""
        return self._heard

    # --- CallLine -----------------------------------------------------------------------------

    async def listen(self) -> AsyncIterator[bytes]:
        started = self._clock.now()
        script = self._script
        while not self._hung_up and script.tick_count < self._max_ticks:
            await self._clock.sleep_until(started + script.tick_count * _TICK)
            heard = self._take_agent_frame()
            frame = script.tick(heard or silence(), agent_speaking=heard is not None)
            if frame is None:
                return
            yield frame

    async def play(self, frame: bytes) -> int:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        await self._queue.put(frame)
        return self._heard + self._queue.qsize() - 1

    async def clear(self) -> int:
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        return self._heard

    async def drain(self) -> int:
        await self._queue.join()
        return self._heard

    async def hang_up(self) -> None:
        self._hung_up = True

    # --- the media clock ----------------------------------------------------------------------

    def _take_agent_frame(self) -> bytes | None:
        """The agent frame the caller hears this tick; None when the agent is silent."""
        try:
            frame = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self._queue.task_done()
        self._heard += 1
        return frame
