"""One simulated call, and what happened in it.

`run_wav_call` plays the caller over the in-process WAV line; the other ways in (`--via`: a fake
Twilio, real SIP over loopback) report the same `CallReport`, so the runner checks them alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from appliance.clock import Clock
from appliance.conversation.events import Event, EventSink, TranscriptFinal, TurnCompleted
from appliance.conversation.ports import CallInfo, CallLine
from appliance.telephony.wavfile import LineEvent, Step, WavLine

__all__ = ["Answer", "CallRecording", "CallReport", "run_wav_call"]

Answer = Callable[[CallLine, EventSink], Awaitable[str]]
"""Takes a call on a line, as every line's calls are taken (`Appliance.answer`); returns why it
ended."""


class CallRecording(Protocol):
    """What the caller heard and said, tick by tick (`WavLine`, or a SIP caller's recording)."""

    @property
    def agent_audio(self) -> list[bytes]: ...

    @property
    def caller_audio(self) -> list[bytes]: ...

    @property
    def timeline(self) -> list[LineEvent]: ...

    def write_agent_wav(self, path: Path) -> None: ...


@dataclass(slots=True)
class CallReport:
    line: CallRecording
    ended: str = ""
    events: list[Event] = field(default_factory=list)

    @property
    def turns(self) -> list[TurnCompleted]:
        return [e for e in self.events if isinstance(e, TurnCompleted)]

    @property
    def unanswered(self) -> list[str]:
        """What the caller was heard to say on turns the agent never completed an answer to
        (it ran out of time, or the call ended first)."""
        answered = {t.turn for t in self.turns}
        return [
            e.text
            for e in self.events
            if isinstance(e, TranscriptFinal) and e.text.strip() and e.turn not in answered
        ]

    @property
    def timeline(self) -> list[LineEvent]:
        return self.line.timeline

    def to_json(self, reply_wav: str | None = None) -> dict[str, object]:
        return {
            "turns": [
                {
                    "heard": t.transcript,
                    "reply": t.reply,
                    "interrupted": t.interrupted,
                    "timings_ms": dict(t.timings_ms),
                }
                for t in self.turns
            ],
            "reply_wav": reply_wav,
            "ended": self.ended,
            # When each side spoke, in milliseconds of the call (the reply WAV's time).
            "timeline": [{"at_ms": e.at_ms, "what": e.what} for e in self.timeline],
        }


async def run_wav_call(
    answer: Answer,
    steps: Sequence[Step],
    *,
    clock: Clock,
    info: CallInfo | None = None,
    max_call_s: float = 300.0,
    on_event: EventSink | None = None,
) -> CallReport:
    """Play the caller's script into a call answered by `answer`, in real time, and report."""
    line = WavLine(steps, clock=clock, info=info, max_call_s=max_call_s)
    report = CallReport(line=line)

    def sink(event: Event) -> None:
        line.observe(event)
        report.events.append(event)
        if on_event is not None:
            on_event(event)

    report.ended = await answer(line, sink)
    return report
