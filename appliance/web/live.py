"""Calls in progress and what is being said on them, fanned out to the status pages watching.

`LiveCalls.watch` lists each call `CallDesk.answer` runs while it runs, and every event of its
session (through the sink it gives) becomes a small update: a line of the
transcript, a change of state, the end. Each watching page holds a `Subscription`: a bounded
queue of updates. Overflow policy: a page that reads too slowly loses the oldest updates, the
loss is counted (`tel3sis_live_updates_dropped`) and the page is sent a fresh snapshot instead,
so it never shows a transcript with a hole in it. A call can never wait for a browser: `publish`
only appends. At most `max_subscribers` pages watch at once; each call keeps its last
`max_lines` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from appliance.clock import Clock
from appliance.conversation.events import (
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    CallEnded,
    CallerStartedSpeaking,
    EngineFellBack,
    Event,
    EventSink,
    PhraseSpoken,
    ReplyInterrupted,
    ToolCalled,
    TranscriptFinal,
    TurnCompleted,
)
from appliance.conversation.ports import CallInfo
from appliance.observability.metrics import Metrics

__all__ = ["LiveCalls", "Subscription", "TooManyWatchers", "Update"]

Update = dict[str, Any]
"""One JSON object sent to the page: `{"type": "line" | "state" | "call" | "ended", ...}`."""


class TooManyWatchers(Exception):
    """Every subscription slot is taken."""


@dataclass(slots=True)
class _Call:
    info: CallInfo
    started: float
    """Unix seconds."""
    state: str = "answering"
    turn: int = 0
    lines: deque[Update] = field(default_factory=deque)

    def view(self) -> Update:
        return {
            "id": self.info.call_id,
            "line": self.info.line,
            "caller": self.info.caller,
            "started": self.started,
            "state": self.state,
            "turn": self.turn,
            "lines": list(self.lines),
        }


class Subscription:
    """One page's queue of updates (see the module docstring for its overflow policy)."""

    def __init__(self, size: int, on_drop: Callable[[], None]) -> None:
        self._queue: deque[Update] = deque(maxlen=size)
        self._on_drop = on_drop
        self._ready = asyncio.Event()
        self.dropped = 0
        """Updates lost since the page's last snapshot."""
        self.closed = False

    def put(self, update: Update) -> None:
        if self.closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            self._on_drop()
        self._queue.append(update)
        self._ready.set()

    async def next(self) -> list[Update]:
        """Every update queued, waiting for one; empty once closed."""
        while not self._queue and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        updates = list(self._queue)
        self._queue.clear()
        return updates

    def resynced(self) -> None:
        """The page was sent a snapshot: what was queued and lost before it no longer matters."""
        self._queue.clear()
        self.dropped = 0

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class LiveCalls:
    def __init__(
        self,
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        max_subscribers: int = 16,
        queue_size: int = 256,
        max_lines: int = 200,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._max_subscribers = max_subscribers
        self._queue_size = queue_size
        self._max_lines = max_lines
        self._calls: dict[str, _Call] = {}
        self._subscribers: set[Subscription] = set()

    def snapshot(self) -> list[Update]:
        """Every call in progress, oldest first, with its transcript so far."""
        return [call.view() for call in sorted(self._calls.values(), key=lambda c: c.started)]

    def __len__(self) -> int:
        return len(self._calls)

    def subscribe(self) -> Subscription:
        """A queue of updates for one page; raises TooManyWatchers when all slots are taken.
        Give it back with `unsubscribe`."""
        if len(self._subscribers) >= self._max_subscribers:
            raise TooManyWatchers(f"{self._max_subscribers} pages are watching already")
        subscription = Subscription(self._queue_size, self._dropped)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        subscription.close()

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (the web server is stopping)."""
        for subscription in list(self._subscribers):
            subscription.close()

    def _dropped(self) -> None:
        if self._metrics is not None:
            self._metrics.live_updates_dropped.inc()

    def _publish(self, update: Update) -> None:
        for subscription in self._subscribers:
            subscription.put(update)

    @contextlib.contextmanager
    def watch(self, info: CallInfo) -> Iterator[EventSink]:
        """A sink for the call's events, the call listed while the block runs."""
        call = self._begin(info)
        ended = "failed"

        def sink(event: Event) -> None:
            nonlocal ended
            if isinstance(event, CallEnded):
                ended = event.reason
            self._note(call, event)

        try:
            yield sink
        finally:
            self._end(call, ended)

    def _begin(self, info: CallInfo) -> _Call:
        call = _Call(info=info, started=self._clock.wall(), lines=deque(maxlen=self._max_lines))
        self._calls[info.call_id] = call
        self._publish({"type": "call", "call": call.view()})
        return call

    def _end(self, call: _Call, reason: str) -> None:
        if self._calls.get(call.info.call_id) is call:
            del self._calls[call.info.call_id]
            self._publish({"type": "ended", "id": call.info.call_id, "reason": reason})

    def _note(self, call: _Call, event: Event) -> None:
        for update in _updates(call, event):
            if update["type"] == "line":
                call.lines.append(update)
            elif update["type"] == "state":
                call.state = update["state"]
            self._publish(update | {"id": call.info.call_id})


def _line(speaker: str, text: str, turn: int, **more: object) -> Update:
    return {"type": "line", "speaker": speaker, "text": text, "turn": turn, **more}


def _state(state: str) -> Update:
    return {"type": "state", "state": state}


def _updates(call: _Call, event: Event) -> list[Update]:  # noqa: PLR0911 - one per event kind
    """What the page shows of one event (most events change nothing it shows)."""
    match event:
        case CallerStartedSpeaking():
            return [_state("caller speaking")]
        case TranscriptFinal(turn=turn, text=text):
            call.turn = max(call.turn, turn)
            return [_line("caller", text, turn), _state("thinking")] if text else []
        case AgentStartedSpeaking():
            return [_state("agent speaking")]
        case AgentStoppedSpeaking():
            return [_state("listening")]
        case ReplyInterrupted():
            return [_state("caller speaking")]
        case TurnCompleted(turn=turn, reply=reply, interrupted=interrupted):
            timings = {k: round(v) for k, v in event.timings_ms.items()}
            return [_line("agent", reply, turn, interrupted=interrupted, timings_ms=timings)]
        case PhraseSpoken(heard=heard, interrupted=interrupted) if heard:
            return [_line("agent", heard, 0, interrupted=interrupted)]
        case ToolCalled(turn=turn, name=name):
            return [_line("tool", name, turn)]
        case EngineFellBack(port=port, failed=failed, used=used):
            return [_line("note", f"{port}: {failed} failed, {used} took over", call.turn)]
        case CallEnded():
            return [_state("ended")]
        case _:
            return []
