"""A call's transcript, stored side by side as each turn completes: an EventSink for one call.

Beside the words, what the agent did (tools run and their results, transfers, hanging up) goes
to `actions`, and each caller turn keeps its speech-to-text confidence: what happened on the
call is then on its record, not left to the model's reading of the words.

The caller's words are written as soon as they are final (before the agent answers), the agent's
when the caller has heard them (or cut them off), the agent's fixed phrases when spoken. Times are
seconds since the call began, the recording's own time axis. Nothing waits on the database: the
sink queues each write for a writer task. Overflow policy: past 64 queued writes the database has
been stuck for minutes; the write is dropped, logged and counted (`tel3sis_errors{kind="records"}`)
rather than holding up the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import assert_never

from appliance.conversation.events import (
    AgentHungUp,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    CallerStartedSpeaking,
    CallerStoppedSpeaking,
    CallStarted,
    Event,
    EventSink,
    MemoryRecalled,
    MessageTaken,
    PhraseSpoken,
    ReplyInterrupted,
    SafetyChecked,
    ToolCalled,
    ToolFinished,
    TranscriptFinal,
    Transfer,
    TurnCompleted,
)
from appliance.memory import actions, audit, calls, messages
from appliance.memory.db import Database
from appliance.memory.session import SessionState
from appliance.observability.metrics import Metrics

__all__ = ["TranscriptSink"]

_log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[object]]


class TranscriptSink:
    """Turns a call's events into transcript rows and live slots; forwards every event first."""

    def __init__(
        self,
        db: Database,
        call_id: str,
        *,
        state: SessionState,
        forward: EventSink | None = None,
        metrics: Metrics | None = None,
        max_queued: int = 64,
    ) -> None:
        self._db = db
        self._call_id = call_id
        self._state = state
        self._forward = forward
        self._metrics = metrics
        self._writes: asyncio.Queue[Write] = asyncio.Queue(maxsize=max_queued)
        self._wake = asyncio.Event()
        self._closed = False
        self._t0: float | None = None
        self._onset: float | None = None
        self._speech_end: float | None = None
        self._agent_started: dict[int, float] = {}
        self._agent_stopped: dict[int, float] = {}
        self._unsaid: dict[int, str] = {}
        self._caller_started: dict[int, float | None] = {}
        """A turn the caller went on with keeps the start of its first words."""
        self.caller_turns = 0

    def __call__(self, event: Event) -> None:
        if self._forward is not None:
            try:
                self._forward(event)
            except Exception:
                _log.exception("an event observer failed on %s", type(event).__name__)
        self._note(event)

    def _offset(self, at: float | None) -> float | None:
        if at is None or self._t0 is None:
            return None
        return round(at - self._t0, 3)

    def _note(self, event: Event) -> None:
        match event:
            case CallStarted(at=at):
                self._t0 = at
            case CallerStartedSpeaking(at=at):
                self._onset = at if self._onset is None else self._onset
            case CallerStoppedSpeaking(at=at):
                self._speech_end = at
            case TranscriptFinal():
                self._caller_words(event)
            case AgentStartedSpeaking(turn=turn, at=at):
                self._agent_started[turn] = at
            case AgentStoppedSpeaking(turn=turn, at=at):
                self._agent_stopped[turn] = at
            case ReplyInterrupted(turn=turn, unsaid=unsaid):
                self._unsaid[turn] = unsaid
            case TurnCompleted(turn=turn, reply=reply, interrupted=interrupted):
                self._caller_started.pop(turn, None)
                unsaid = self._unsaid.pop(turn, "")
                self._agent_words(
                    turn,
                    reply,
                    interrupted,
                    unsaid,
                    timings=event.timings_ms,
                    starts=event.starts_ms,
                    engines=event.engines,
                )
            case PhraseSpoken(text=text, heard=heard, interrupted=interrupted):
                unsaid = text.removeprefix(heard).strip() if interrupted else ""
                self._agent_words(0, heard, interrupted, unsaid)
            case (
                ToolCalled()
                | ToolFinished()
                | Transfer()
                | AgentHungUp()
                | MessageTaken()
                | SafetyChecked()
            ):
                self._act(event)
            case MemoryRecalled(found=found):
                self._slots({"recalled": " | ".join(r.call_id for r in found)})
            case _:
                pass

    def _caller_words(self, event: TranscriptFinal) -> None:
        turn = event.turn
        self.caller_turns = max(self.caller_turns, turn)
        started = self._caller_started.setdefault(turn, self._offset(self._onset))
        ended = self._offset(self._speech_end)
        self._onset = None
        self._write(
            calls.save_caller_words,
            turn=turn,
            text=event.text,
            started=started,
            ended=ended,
            confidence=event.confidence,
        )
        self._slots({"turn": str(turn), "caller_said": event.text})

    def _act(
        self,
        event: ToolCalled | ToolFinished | Transfer | AgentHungUp | MessageTaken | SafetyChecked,
    ) -> None:
        match event:
            case ToolCalled(turn=turn, name=name, arguments=arguments):
                self._write(
                    actions.save_action, turn=turn, kind="tool", name=name, arguments=arguments
                )
            case ToolFinished(turn=turn, name=name, ok=ok, result=result):
                self._write(actions.finish_tool, turn=turn, name=name, ok=ok, result=result)
            case Transfer(target=target):
                self._write(actions.save_action, turn=0, kind="transfer", name=target)
            case AgentHungUp(reason=reason):
                self._write(actions.save_action, turn=0, kind="hangup", name=reason)
            case MessageTaken(to=to, target=target, text=text):
                self._write(messages.save_message, for_who=to, target=target, text=text)
            case SafetyChecked():
                self._write(audit.save_decision, decision=_decision(self._call_id, event))
            case _:
                assert_never(event)

    def _agent_words(
        self,
        turn: int,
        text: str,
        interrupted: bool,
        unsaid: str,
        *,
        timings: Mapping[str, float] | None = None,
        starts: Mapping[str, float] | None = None,
        engines: Mapping[str, str] | None = None,
    ) -> None:
        self._write(
            calls.save_agent_words,
            turn=turn,
            text=text,
            started=self._offset(self._agent_started.get(turn)),
            ended=self._offset(self._agent_stopped.get(turn)),
            interrupted=interrupted,
            unsaid=unsaid,
            timings=dict(timings or {}),
            starts=dict(starts or {}),
            engines=dict(engines or {}),
        )

    def _write(self, fn: Callable[..., None], **values: object) -> None:
        self._queue(lambda: self._db.run(fn, self._call_id, **values))

    def _slots(self, slots: dict[str, str]) -> None:
        self._queue(lambda: self._state.update(self._call_id, slots))

    def _queue(self, write: Write) -> None:
        try:
            self._writes.put_nowait(write)
        except asyncio.QueueFull:
            _log.error(
                "the call's records are %d writes behind; one is dropped", self._writes.qsize()
            )
            self._count_error()
            return
        self._wake.set()

    def _count_error(self) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels("records").inc()

    def close(self) -> None:
        """The call is over: the writer finishes what is queued, then stops."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """The writer: every queued write in order, until `close`. Never raises."""
        while True:
            if self._writes.empty():
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            write = self._writes.get_nowait()
            try:
                await write()
            except Exception:
                _log.exception("could not store part of the call's records")
                self._count_error()


def _decision(call_id: str, event: SafetyChecked) -> audit.Decision:
    return audit.Decision(
        call_id=call_id,
        at=time.time(),
        turn=event.turn,
        layer=event.layer,
        action=event.action,
        text=event.text,
        score=event.score,
        threshold=event.threshold,
        category=event.category,
        engine=event.engine,
    )
