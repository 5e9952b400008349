"""`CallDesk.answer`, the one path of every call: slot, records, watchers, session, fan-out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from appliance.clock import LoopClock
from appliance.conversation.events import CallEnded, CallStarted, Event, EventSink
from appliance.conversation.ports import (
    CallInfo,
    CallLine,
    Echoing,
    Handoff,
    Keypad,
    KeyPress,
    LineLoss,
    Message,
    Recall,
    Transferable,
    TransferError,
)
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import Admission, CallDesk, Verdict

INFO = CallInfo(call_id="c1", line="sip", caller="+15550100")


@dataclass
class _Record:
    line: CallLine
    seen: list[str]
    context: Sequence[Message] = (Message(role="system", content="The caller is Ann."),)
    recall: Recall | None = None
    reason: str = "failed"

    def sink(self, event: Event) -> None:
        self.seen.append(f"records:{type(event).__name__}")
        if isinstance(event, CallEnded):
            self.reason = event.reason


@dataclass
class _Records:
    admission: Admission
    seen: list[str]
    closed: list[tuple[str, Verdict]] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def open(self, line: CallLine) -> AsyncIterator[_Record]:
        async def hang_up() -> None:
            self.seen.append("records:hang_up")

        recording = SimpleNamespace(info=line.info, hang_up=hang_up)
        record = _Record(line=recording, seen=self.seen)  # type: ignore[arg-type]
        try:
            yield record
        finally:
            # Writing the records takes a while: the slot must be free by now.
            await asyncio.sleep(0)
            self.closed.append((record.reason, self.admission.check(None)))


@dataclass
class _Watchers:
    seen: list[str]
    listed: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def watch(self, info: CallInfo) -> Iterator[EventSink]:
        self.listed.append(info.call_id)

        def sink(event: Event) -> None:
            self.seen.append(f"page:{type(event).__name__}")
            raise RuntimeError("the page is broken")  # must not stop the observer after it

        try:
            yield sink
        finally:
            self.listed.remove(info.call_id)


class _Session:
    def __init__(self, line: CallLine, sink: EventSink, *, fail: bool = False) -> None:
        self.line, self._sink, self._fail = line, sink, fail

    async def run(self) -> str:
        self._sink(CallStarted(info=INFO, at=0.0))
        if self._fail:
            raise RuntimeError("the session broke")
        self._sink(CallEnded(reason="caller hung up", at=1.0))
        return "caller hung up"


def _desk(*, fail: bool = False) -> tuple[CallDesk, _Records, _Watchers, list[str], list[object]]:
    admission = Admission(clock=LoopClock(), max_calls=1, rate_limit=0)
    seen: list[str] = []
    made: list[object] = []
    records = _Records(admission, seen)
    watchers = _Watchers(seen)

    def new_session(
        line: CallLine, sink: EventSink, context: Sequence[Message], recall: Recall | None
    ) -> _Session:
        made.append((line, list(context), recall))
        return _Session(line, sink, fail=fail)

    desk = CallDesk(admission, new_session, Metrics(), records=records, watchers=watchers)
    return desk, records, watchers, seen, made


def test_a_call_goes_through_records_page_and_observer_in_that_order() -> None:
    desk, records, watchers, seen, made = _desk()
    line = SimpleNamespace(info=INFO)

    def observe(event: Event) -> None:
        seen.append(f"observer:{type(event).__name__}")

    reason = asyncio.run(desk.answer(line, observe))  # type: ignore[arg-type]
    assert reason == "caller hung up"
    assert seen == [
        "records:CallStarted",
        "page:CallStarted",
        "observer:CallStarted",
        "records:CallEnded",
        "page:CallEnded",
        "observer:CallEnded",
    ]
    # The session talks on the records' line and knows what the records know of the caller.
    ((session_line, context, _),) = made
    asyncio.run(session_line.hang_up())
    assert seen[-1] == "records:hang_up"
    assert [m.content for m in context] == ["The caller is Ann."]
    # The slot was back before the records were written; the records learned the reason.
    assert records.closed == [("caller hung up", Verdict.ADMIT)]
    assert watchers.listed == []
    assert desk.admission.active == 0


def test_a_failing_session_is_a_failed_call_with_its_records_closed() -> None:
    desk, records, watchers, _, _ = _desk(fail=True)
    reason = asyncio.run(desk.answer(SimpleNamespace(info=INFO)))  # type: ignore[arg-type]
    assert reason == "failed"
    assert records.closed == [("failed", Verdict.ADMIT)]
    assert watchers.listed == []
    assert desk.admission.active == 0


def test_a_call_without_records_or_watchers_runs_on_its_own_line() -> None:
    admission = Admission(clock=LoopClock(), max_calls=1, rate_limit=0)
    line = SimpleNamespace(info=INFO)
    made: list[CallLine] = []

    def new_session(
        line: CallLine, sink: EventSink, context: Sequence[Message], recall: Recall | None
    ) -> _Session:
        assert not context and recall is None
        made.append(line)
        return _Session(line, sink)

    desk = CallDesk(admission, new_session, Metrics())
    events: list[Event] = []
    assert asyncio.run(desk.answer(line, events.append)) == "caller hung up"  # type: ignore[arg-type]
    assert made == [line]
    assert [type(e) for e in events] == [CallStarted, CallEnded]


class _OwnLine:
    """A line that can transfer and has keys (as SIP's and Twilio's do)."""

    def __init__(self) -> None:
        self.info = INFO
        self.handed: list[Handoff] = []

    async def transfer(self, handoff: Handoff) -> None:
        self.handed.append(handoff)

    async def presses(self) -> AsyncIterator[KeyPress]:
        yield KeyPress(digit="0", method="rfc4733")


def test_a_recorded_line_keeps_the_calls_transfer_and_keys() -> None:
    """The records wrap the line to record it; the session must still reach the line's own
    transfer and keys (issue 11: the recording line did not pass `transfer` through)."""
    desk, _, _, _, made = _desk()
    own = _OwnLine()
    asyncio.run(desk.answer(own))  # type: ignore[arg-type]
    ((session_line, _, _),) = made
    assert isinstance(session_line, Transferable) and isinstance(session_line, Keypad)
    handoff = Handoff(target="+15550199", who="Sam", summary="A call for Sam.")

    async def use() -> list[KeyPress]:
        await session_line.transfer(handoff)
        return [key async for key in session_line.presses()]

    assert asyncio.run(use()) == [KeyPress(digit="0", method="rfc4733")]
    assert own.handed == [handoff]


def test_a_recorded_line_that_cannot_transfer_says_so() -> None:
    desk, _, _, _, made = _desk()
    asyncio.run(desk.answer(SimpleNamespace(info=INFO)))  # type: ignore[arg-type]
    ((session_line, _, _),) = made

    async def use() -> list[KeyPress]:
        with pytest.raises(TransferError, match="cannot transfer"):
            await session_line.transfer(Handoff(target="+15550199", who="Sam", summary=""))
        return [key async for key in session_line.presses()]

    assert asyncio.run(use()) == []


class _Speakerphone:
    """A line that hears the agent (`Echoing`) and can lose the call itself (`LineLoss`)."""

    def __init__(self) -> None:
        self.info = INFO
        self.held: list[bool] = []
        self.lost_because = "no audio from the caller"

    def hold(self) -> int:
        self.held.append(True)
        return 12

    def release(self) -> None:
        self.held.append(False)


def test_a_recorded_line_keeps_the_speakerphones_hold_and_why_a_call_was_lost() -> None:
    """Without them the session could not hold the agent for its echo (it cut itself off
    instead), nor say why the line lost a call ("caller hung up" instead)."""
    desk, _, _, _, made = _desk()
    own = _Speakerphone()
    asyncio.run(desk.answer(own))  # type: ignore[arg-type]
    ((session_line, _, _),) = made
    assert isinstance(session_line, Echoing) and isinstance(session_line, LineLoss)
    assert session_line.hold() == 12
    session_line.release()
    assert own.held == [True, False]
    assert session_line.lost_because == "no audio from the caller"


def test_a_recorded_line_that_does_not_hear_the_agent_is_not_held() -> None:
    desk, _, _, _, made = _desk()
    asyncio.run(desk.answer(_OwnLine()))  # type: ignore[arg-type]
    ((session_line, _, _),) = made
    assert not isinstance(session_line, Echoing)
    assert isinstance(session_line, LineLoss) and session_line.lost_because is None
