"""A phone line whose caller is a script of recordings: the offline harness and `appliance call`.

The line keeps its own 20 ms media clock, like a real one: each tick it hands the session one
caller frame and takes one agent frame off a short outbound queue (silence when it is empty).
Frames taken off that queue are what the caller heard; `clear` empties it, so a barge-in is
audible within one tick. The caller follows a script: speak a recording once the agent has
been quiet for a moment (or part-way into the agent's reply, to barge in), and hang up when
the conversation is over. Both sides and a timeline are kept for the report.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance.audio.frame import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, frames_of, rms_dbfs, silence
from appliance.audio.wav import WavAudio, decode_wav
from appliance.clock import Clock
from appliance.conversation.ports import CallInfo

__all__ = ["HangUp", "LineEvent", "Speak", "WavLine", "load_wav"]

_log = logging.getLogger(__name__)
_TICK = FRAME_MS / 1000.0
_VOICED_DBFS = -45.0


def load_wav(path: Path) -> WavAudio:
    """Read and convert a WAV file; raises WavFormatError (or OSError) with the path in it."""
    return decode_wav(path.read_bytes(), name=str(path))


@dataclass(frozen=True, slots=True)
class Speak:
    """The caller says `pcm`, once the agent has been quiet for `gap_ms` (`after="agent"`), or
    `offset_ms` into the agent's next reply (`after="agent-start"`: a barge-in).

    A second of quiet is longer than a person waits, but a loaded machine can leave a short gap
    between the agent's sentences, and a scripted caller who takes that gap for the end of the
    reply turns a test about one thing into a test about barge-in."""

    pcm: bytes
    label: str = ""
    after: Literal["agent", "agent-start"] = "agent"
    gap_ms: int = 1000
    offset_ms: int = 0


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up once the agent has been quiet for `gap_ms` after answering them.

    A script without one keeps the caller on the line, silent, until the agent hangs up."""

    gap_ms: int = 1500


Step = Speak | HangUp


@dataclass(frozen=True, slots=True)
class LineEvent:
    at_ms: int
    """Milliseconds since the call began, in line time (ticks)."""
    what: Literal[
        "caller-start", "caller-voice", "caller-end", "agent-start", "agent-stop", "hangup"
    ]
    step: int = -1


@dataclass(slots=True)
class _Script:
    steps: Sequence[Step]
    max_wait_ticks: int
    index: int = 0
    playing: list[bytes] = field(default_factory=list)
    waited: int = 0
    agent_started_at: int | None = None
    """Tick at which the agent began speaking since the caller last finished."""
    voiced_seen: bool = False


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
        self._script = _Script(steps=list(steps), max_wait_ticks=int(max_wait_s / _TICK))
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_frames)
        self._max_ticks = int(max_call_s / _TICK)
        self._tick = 0
        self._heard = 0
        self._quiet_ticks = 0
        self._agent_on = False
        self._hung_up = False
        self.agent_audio: list[bytes] = []
        """One agent frame per tick (silence when it said nothing): the caller's ear."""
        self.caller_audio: list[bytes] = []
        self.timeline: list[LineEvent] = []

    @property
    def info(self) -> CallInfo:
        return self._info

    @property
    def heard(self) -> int:
        """Agent frames played to the caller so far: positions below this were heard."""
        return self._heard

    # --- CallLine -----------------------------------------------------------------------------

    async def listen(self) -> AsyncIterator[bytes]:
        started = self._clock.now()
        while not self._hung_up and self._tick < self._max_ticks:
            await self._clock.sleep_until(started + self._tick * _TICK)
            self._play_agent_frame()
            frame = self._caller_frame()
            if frame is None:
                self._note("hangup")
                return
            self.caller_audio.append(frame)
            self._tick += 1
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

    def _note(self, what: str, step: int = -1) -> None:
        self.timeline.append(LineEvent(at_ms=self._tick * FRAME_MS, what=what, step=step))  # type: ignore[arg-type]

    def _play_agent_frame(self) -> None:
        try:
            frame = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            self.agent_audio.append(silence())
            self._quiet_ticks += 1
            if self._agent_on:
                self._agent_on = False
                self._note("agent-stop")
            return
        self._queue.task_done()
        self._heard += 1
        self.agent_audio.append(frame)
        self._quiet_ticks = 0
        if not self._agent_on:
            self._agent_on = True
            self._note("agent-start")
            if self._script.agent_started_at is None:
                self._script.agent_started_at = self._tick

    def _caller_frame(self) -> bytes | None:
        """The caller's next frame, or None when the caller hangs up."""
        script = self._script
        if script.playing:
            frame = script.playing.pop(0)
            if not script.voiced_seen and rms_dbfs(frame) > _VOICED_DBFS:
                script.voiced_seen = True
                self._note("caller-voice", script.index - 1)
            if not script.playing:
                self._note("caller-end", script.index - 1)
                script.agent_started_at = None
            return frame
        if script.index >= len(script.steps):
            return silence()  # no HangUp step: the caller stays on, silent, until the agent ends it
        step = script.steps[script.index]
        script.waited += 1
        gave_up = script.waited >= script.max_wait_ticks
        if self._ready(step) or gave_up:
            if gave_up:
                _log.warning(
                    "the agent did not answer; the caller goes on after %d s",
                    script.waited * FRAME_MS // 1000,
                )
            script.waited = 0
            script.index += 1
            if isinstance(step, HangUp):
                return None
            script.playing = list(frames_of(step.pcm)) or [silence()]
            script.voiced_seen = False
            self._note("caller-start", script.index - 1)
        return silence()

    def _ready(self, step: Step) -> bool:
        started = self._script.agent_started_at
        if started is None:
            return False
        if isinstance(step, Speak) and step.after == "agent-start":
            return (self._tick - started) * FRAME_MS >= step.offset_ms
        return not self._agent_on and self._quiet_ticks * FRAME_MS >= step.gap_ms

    # --- results ------------------------------------------------------------------------------

    def write_agent_wav(self, path: Path) -> None:
        """The agent's side of the whole call, time-aligned, as a 16 kHz mono WAV."""
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(b"".join(self.agent_audio))
