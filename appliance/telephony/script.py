"""A scripted caller, tick by tick: what it says and when, and a recording of both sides.

The caller follows a script of steps: speak a recording once the agent has been quiet for a
moment (or part-way into the agent's reply, to barge in), and hang up when the conversation is
over. Every 20 ms tick the line tells the script what the caller heard and whether the agent
was speaking, and the script answers with the caller's next frame (None: it hangs up). The
same script drives the offline WAV line (`wavfile.py`) and the harness's SIP caller, so both
keep one timeline with one meaning.

On the WAV line the agent is speaking while its queue has frames; over a real line it is
speaking while what the caller hears is loud, and a line can ask for a hangover: the agent
counts as stopped only after that many quiet ticks (pauses between words are not the end of a
reply), and the stop is then dated back to the first quiet tick.

Silence alone cannot tell the end of a reply from a pause between its sentences on a loaded
machine. Where the line can pass the script the session's own events (`observe`: the WAV line
and the Twilio harness run in the session's process), the agent's answer is over only once the
session also says its agent stopped speaking; a far end that gives no events (the SIP caller,
in its own process) is judged by silence alone.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance.audio.frame import FRAME_MS, SAMPLE_RATE, frames_of, rms_dbfs, silence
from appliance.conversation.events import (
    HELLO_OVER_GREETING,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    CallEnded,
    Event,
    TurnDiscarded,
)

__all__ = ["CallerScript", "HangUp", "LineEvent", "Recording", "Speak", "Step"]

_log = logging.getLogger(__name__)
VOICED_DBFS = -45.0


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
    """The caller hangs up once the agent has been quiet for `gap_ms` after answering them
    (and, where the session's events reach the script, once the session says it stopped).

    A script without one keeps the caller on the line, silent, until the agent hangs up."""

    gap_ms: int = 1500
    in_pause: bool = False
    """Hang up in the first quiet of `gap_ms`, even a pause the session says is mid-reply (a
    caller who gives up while the agent is still answering)."""


Step = Speak | HangUp

EventKind = Literal[
    "caller-start", "caller-voice", "caller-end", "agent-start", "agent-stop", "hangup"
]


@dataclass(frozen=True, slots=True)
class LineEvent:
    at_ms: int
    """Milliseconds since the call began, in line time (ticks)."""
    what: EventKind
    step: int = -1


@dataclass(slots=True)
class Recording:
    """Both sides of a call, one frame per tick, and its timeline."""

    agent_audio: list[bytes] = field(default_factory=list)
    """One agent frame per tick (silence when it said nothing): the caller's ear."""
    caller_audio: list[bytes] = field(default_factory=list)
    timeline: list[LineEvent] = field(default_factory=list)

    def write_agent_wav(self, path: Path) -> None:
        """The agent's side of the whole call, time-aligned, as a 16 kHz mono WAV."""
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(b"".join(self.agent_audio))


class CallerScript:
    """The caller's side of a scripted call; `tick()` once per 20 ms."""

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        max_wait_s: float = 60.0,
        hangover_ticks: int = 0,
        recording: Recording | None = None,
    ) -> None:
        self._steps = list(steps)
        self._max_wait_ticks = int(max_wait_s * 1000 / FRAME_MS)
        self._hangover = hangover_ticks
        self.recording = recording if recording is not None else Recording()
        self.tick_count = 0
        self._index = 0
        self._playing: list[bytes] = []
        self._waited = 0
        self._agent_started_at: int | None = None
        """Tick at which the agent began answering the caller's last words."""
        self._voiced_seen = False
        self._voiced_at = 0
        self._quiet_ticks = 0
        self._agent_on = False
        self._agent_on_since = 0
        self._session_speaking: bool | None = None
        """What the session last said of its agent; None while it has said nothing (no events)."""

    def tick(self, heard: bytes, *, agent_speaking: bool) -> bytes | None:
        """One tick: the caller heard `heard`; returns its next frame, None when it hangs up."""
        self.recording.agent_audio.append(heard)
        self._follow_agent(agent_speaking)
        frame = self._caller_frame()
        if frame is None:
            self._note("hangup")
            return None
        self.recording.caller_audio.append(frame)
        self.tick_count += 1
        return frame

    def observe(self, event: Event) -> None:
        """The session's own event (an `EventSink`): whether its agent is speaking."""
        match event:
            case AgentStartedSpeaking():
                self._session_speaking = True
            case TurnDiscarded(reason=reason) if reason == HELLO_OVER_GREETING:
                # The agent will not answer the caller's "hello?" (the greeting they heard
                # whole did): the caller goes on after the usual gap, counted from now.
                self._session_speaking = False
                self._agent_started_at = self.tick_count
                self._quiet_ticks = 0
            case AgentStoppedSpeaking() | TurnDiscarded() | CallEnded():
                # A reply dropped before the caller heard any of it ends with TurnDiscarded.
                self._session_speaking = False
            case _:
                if self._session_speaking is None:
                    self._session_speaking = False

    def _note(self, what: EventKind, step: int = -1, ticks_ago: int = 0) -> None:
        at_ms = (self.tick_count - ticks_ago) * FRAME_MS
        self.recording.timeline.append(LineEvent(at_ms=at_ms, what=what, step=step))

    def _follow_agent(self, speaking: bool) -> None:
        if speaking:
            self._quiet_ticks = 0
            if not self._agent_on:
                self._agent_on = True
                self._agent_on_since = self.tick_count
                self._note("agent-start")
                if self._agent_started_at is None:
                    self._agent_started_at = self.tick_count
            return
        self._quiet_ticks += 1
        if self._agent_on and self._quiet_ticks > self._hangover:
            self._agent_on = False
            self._note("agent-stop", ticks_ago=self._hangover)

    def _caller_frame(self) -> bytes | None:
        """The caller's next frame, or None when the caller hangs up."""
        if self._playing:
            frame = self._playing.pop(0)
            if not self._voiced_seen and rms_dbfs(frame) > VOICED_DBFS:
                self._voiced_seen = True
                self._voiced_at = self.tick_count
                self._note("caller-voice", self._index - 1)
            if not self._playing:
                self._note("caller-end", self._index - 1)
                self._agent_started_at = self._answer_started()
            return frame
        if self._index >= len(self._steps):
            return silence()  # no HangUp step: the caller stays on, silent, until the agent ends it
        step = self._steps[self._index]
        self._waited += 1
        gave_up = self._waited >= self._max_wait_ticks
        if self._ready(step) or gave_up:
            if gave_up:
                _log.warning(
                    "the agent did not answer; the caller goes on after %d s",
                    self._waited * FRAME_MS // 1000,
                )
            self._waited = 0
            self._index += 1
            if isinstance(step, HangUp):
                return None
            self._playing = list(frames_of(step.pcm)) or [silence()]
            self._voiced_seen = False
            self._note("caller-start", self._index - 1)
        return silence()

    def _answer_started(self) -> int | None:
        """At the end of the caller's recording: the tick the agent's answer began, if it has.

        An agent that answers quickly starts in the recording's trailing silence, so its answer
        may already be under way; speech that began before the caller's voice (a greeting the
        caller talked over) is not an answer."""
        if self._agent_on and self._voiced_seen and self._agent_on_since >= self._voiced_at:
            return self._agent_on_since
        return None

    def _ready(self, step: Step) -> bool:
        started = self._agent_started_at
        if started is None:
            return False
        if isinstance(step, Speak) and step.after == "agent-start":
            return (self.tick_count - started) * FRAME_MS >= step.offset_ms
        mid_reply_ok = isinstance(step, HangUp) and step.in_pause
        if self._session_speaking and not mid_reply_ok:
            return False  # a pause between sentences, however long, is not the end of the answer
        return not self._agent_on and self._quiet_ticks * FRAME_MS >= step.gap_ms
