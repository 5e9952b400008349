"""What a call tells its observers: events to the sink (events.py), figures to the metrics."""

from __future__ import annotations

import logging

from appliance.conversation.events import (
    AgentStoppedSpeaking,
    Event,
    EventSink,
    MemoryRecalled,
    PhraseSpoken,
    ReplyFinished,
    ReplyInterrupted,
    ReplyStarted,
    SafetyChecked,
    ToolCalled,
    ToolFinished,
    TranscriptFinal,
    TurnCompleted,
    TurnDiscarded,
)
from appliance.conversation.ports import ToolCall, Transcript
from appliance.conversation.replies import Outcome, Reply, Result
from appliance.conversation.timings import durations_ms, starts_ms
from appliance.observability.metrics import Metrics

__all__ = ["Observers", "spoken_text"]

_log = logging.getLogger(__name__)


def spoken_text(reply: Reply) -> str:
    """Every sentence of `reply` that reached the line."""
    return " ".join(s.text for s in reply.spoken.values())


class Observers:
    def __init__(self, sink: EventSink | None, metrics: Metrics | None) -> None:
        self._sink = sink
        self._metrics = metrics

    def emit(self, event: Event) -> None:
        if self._sink is not None:
            try:
                self._sink(event)
            except Exception:
                _log.exception("an event observer failed on %s", type(event).__name__)

    def turn_started(self, reply: Reply, transcript: Transcript, at: float) -> None:
        """The turn is confirmed and its reply may be heard."""
        self.emit(
            TranscriptFinal(
                turn=reply.turn,
                text=reply.transcript or "",
                confidence=transcript.confidence,
                engine=transcript.engine,
            )
        )
        if reply.recalled:
            self.emit(MemoryRecalled(turn=reply.turn, found=reply.recalled))
        self.emit(ReplyStarted(turn=reply.turn, at=at))

    def tool(self, reply: Reply, call: ToolCall, ok: bool | None, result: str) -> None:
        if ok is None:
            self.emit(ToolCalled(turn=reply.turn, name=call.name, arguments=call.arguments))
        else:
            self.emit(ToolFinished(turn=reply.turn, name=call.name, ok=ok, result=result))

    def reply_ended(self, reply: Reply, outcome: Outcome, *, was_playing: bool, at: float) -> None:
        """Tell how `reply` ended; a discarded turn not yet numbered has `reply.turn` set to the
        number it would have had."""
        interrupted = outcome.result is Result.INTERRUPTED
        if reply.kind == "turn" and interrupted:
            self.emit(ReplyInterrupted(turn=reply.turn, heard=outcome.heard, unsaid=outcome.unsaid))
        if was_playing:
            self.emit(AgentStoppedSpeaking(turn=reply.turn, at=at))
        if reply.kind == "phrase":
            if reply.spoken:
                text = spoken_text(reply)
                heard = outcome.heard if interrupted else text
                self.emit(PhraseSpoken(text=text, heard=heard, interrupted=interrupted))
        elif outcome.result is Result.DISCARDED:
            if outcome.why:
                self.emit(TurnDiscarded(turn=reply.turn, reason=outcome.why))
        elif reply.transcript is not None:
            self._turn_completed(reply, outcome)

    def _turn_completed(self, reply: Reply, outcome: Outcome) -> None:
        interrupted = outcome.result is Result.INTERRUPTED
        reply_text = outcome.heard if interrupted else spoken_text(reply)
        if not interrupted:
            self.emit(ReplyFinished(turn=reply.turn, text=reply_text))
        spans = reply.spans()
        timings = durations_ms(spans)
        engines = reply.engines()
        self.emit(
            TurnCompleted(
                turn=reply.turn,
                transcript=reply.transcript or "",
                reply=reply_text,
                interrupted=interrupted,
                timings_ms=timings,
                starts_ms=starts_ms(spans, reply.speech_end),
                engines=engines,
            )
        )
        if self._metrics is not None:
            for stage, engine in engines.items():
                self._metrics.turn_engines.labels(stage, engine).inc()
            for stage, ms in timings.items():
                if stage == "turn":
                    self._metrics.turn_latency.observe(ms / 1000.0)
                else:
                    self._metrics.stage_seconds.labels(stage).observe(ms / 1000.0)

    def tool_blocked(self, turn: int, call: ToolCall, why: str) -> None:
        self.safety(
            SafetyChecked(
                turn=turn,
                layer="tool",
                text=f"{call.name} {call.arguments}",
                action="blocked",
                category=why,
                engine="policy",
            )
        )

    def safety(self, checked: SafetyChecked) -> None:
        self.emit(checked)
        if self._metrics is not None:
            self._metrics.safety_decisions.labels(checked.layer, checked.action).inc()

    def barge_in(self) -> None:
        if self._metrics is not None:
            self._metrics.barge_ins.inc()

    def echo_held(self, heard: str) -> None:
        """A hold for speech over the agent was settled: `heard` is "echo" or "caller"."""
        if self._metrics is not None:
            self._metrics.echo_holds.labels(heard).inc()

    def error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels(kind).inc()
