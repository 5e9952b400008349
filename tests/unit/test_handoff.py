"""Handing a caller to a person, and the caller's keys: the session with scripted engines, a
line with a person behind it (who answers or not), in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from appliance.clock import LoopClock
from appliance.conversation.events import (
    CallEnded,
    DtmfReceived,
    Event,
    MessageTaken,
    PhraseSpoken,
    ToolFinished,
    TranscriptFinal,
    Transfer,
    TransferFailed,
    TurnCompleted,
)
from appliance.conversation.handoff import message_taken, not_answering, put_through
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallInfo, CallLine, Handoff, KeyPress, TransferError
from appliance.conversation.profile import Person
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import Tool, ToolRegistry
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.call import CallReport, run_wav_call
from appliance.telephony.wavfile import HangUp, Speak, Step
from appliance.tools.transfer import transfer_tool
from tests.support.calls import PERSONA
from tests.support.fakes import (
    ScriptedLanguageModel,
    ToneSpeechToText,
    ToneTextToSpeech,
    say,
    tool_call,
)
from tests.support.virtual_time import run_virtual

OFFICE = "+15550100"


SAM = Person(name="Sam Jones", role="Owner", number="+15550177")


class _LineToAPerson:
    """The call's line, with a person behind it who answers (or not), and a caller who presses
    `keys` once they have heard the greeting."""

    def __init__(self, line: CallLine, keys: Sequence[str], *, answers: bool) -> None:
        self._line = line
        self._keys = list(keys)
        self._answers = answers
        self.greeted = asyncio.Event()
        self.handed: list[Handoff] = []

    @property
    def info(self) -> CallInfo:
        return self._line.info

    def listen(self) -> AsyncIterator[bytes]:
        return self._line.listen()

    async def play(self, frame: bytes) -> int:
        return await self._line.play(frame)

    async def clear(self) -> int:
        return await self._line.clear()

    async def drain(self) -> int:
        return await self._line.drain()

    async def hang_up(self) -> None:
        await self._line.hang_up()

    async def transfer(self, handoff: Handoff) -> None:
        self.handed.append(handoff)
        if not self._answers:
            raise TransferError("nobody answered within 20 s")

    async def presses(self) -> AsyncIterator[KeyPress]:
        await self.greeted.wait()
        for digit in self._keys:
            yield KeyPress(digit=digit, method="rfc4733")


@dataclass
class _Played:
    report: CallReport
    line: _LineToAPerson
    llm: ScriptedLanguageModel
    events: list[Event] = field(default_factory=list)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    def order(self, *kinds: type) -> list[type]:
        return [type(e) for e in self.events if isinstance(e, kinds)]


def _play(
    steps: Sequence[Step],
    *,
    keys: Sequence[str] = (),
    answers: bool = True,
    replies: Sequence[object] = (),
    tools: Sequence[Tool] | None = None,
) -> _Played:
    async def main() -> _Played:
        clock = LoopClock()
        llm = ScriptedLanguageModel(clock, replies=list(replies))  # type: ignore[arg-type]
        tts = ToneTextToSpeech(clock)
        engines = Engines(stt=ToneSpeechToText(clock), llm=llm, tts=tts, vad=EnergyVoiceActivity())
        chosen = [transfer_tool([SAM], OFFICE)] if tools is None else list(tools)
        made: list[_LineToAPerson] = []
        events: list[Event] = []

        async def answer(line: CallLine, sink: object) -> str:
            person = _LineToAPerson(line, keys, answers=answers)
            made.append(person)

            def watch(event: Event) -> None:
                sink(event)  # type: ignore[operator]
                events.append(event)
                if isinstance(event, PhraseSpoken) and event.text == PERSONA.greeting:
                    person.greeted.set()

            session = CallSession(
                person,
                engines,
                SessionConfig(persona=PERSONA),
                tools=ToolRegistry(chosen),
                phrases=PhraseCache(tts),
                clock=clock,
                sink=watch,
            )
            return await session.run()

        report = await run_wav_call(answer, steps, clock=clock, max_call_s=120)  # type: ignore[arg-type]
        return _Played(report=report, line=made[0], llm=llm, events=events)

    return run_virtual(main())


def test_the_model_puts_the_caller_through_after_saying_so() -> None:
    said = "I'll put you through to Sam Jones."
    call = _play(
        [Speak(say("hello", "weather"))],
        replies=[[tool_call("transfer_to_person", '{"who": "sam"}')], said],
    )
    assert call.report.ended == "transferred"
    (handoff,) = call.line.handed
    assert (handoff.target, handoff.who) == (SAM.target, "Sam Jones")
    # The person is told what the caller said, in the caller's words, and nothing else.
    assert '"hello weather"' in handoff.summary
    (transfer,) = call.of(Transfer)
    assert transfer.summary == handoff.summary
    # The caller heard the whole sentence before the line was asked to transfer.
    (turn,) = call.of(TurnCompleted)
    assert turn.reply == said and not turn.interrupted
    assert call.order(TurnCompleted, Transfer, CallEnded) == [TurnCompleted, Transfer, CallEnded]


def test_pressing_0_asks_for_a_person_at_any_time() -> None:
    call = _play([], keys=["0"])
    assert call.report.ended == "transferred"
    (handoff,) = call.line.handed
    assert handoff.target == OFFICE
    assert "have not said anything" in handoff.summary
    (key,) = call.of(DtmfReceived)
    assert (key.digit, key.method) == ("0", "rfc4733")
    (ran,) = call.of(ToolFinished)
    assert ran.name == "transfer_to_person" and ran.ok
    heard = [p.heard for p in call.of(PhraseSpoken)]
    assert heard == [PERSONA.greeting, put_through("a member of staff")]
    assert call.order(PhraseSpoken, Transfer) == [PhraseSpoken, PhraseSpoken, Transfer]
    assert call.llm.seen == []  # no model was needed


def test_when_nobody_answers_the_agent_takes_a_message() -> None:
    call = _play([Speak(say("book", "more", "time")), HangUp()], keys=["0"], answers=False)
    assert call.report.ended == "caller hung up"
    (failed,) = call.of(TransferFailed)
    assert failed.target == OFFICE and "nobody answered" in failed.reason
    who = "a member of staff"
    heard = [p.heard for p in call.of(PhraseSpoken)]
    assert heard == [PERSONA.greeting, put_through(who), not_answering(who)]
    (message,) = call.of(MessageTaken)
    assert (message.to, message.target, message.text) == (who, OFFICE, "book more time")
    # Recorded as the caller's words, and thanked for without the model.
    (words,) = call.of(TranscriptFinal)
    assert words.text == "book more time"
    (turn,) = call.of(TurnCompleted)
    assert turn.reply == message_taken(who)
    assert call.llm.seen == []


def test_a_digit_is_a_turn_the_model_reads() -> None:
    call = _play([HangUp(gap_ms=3000)], keys=["1"], replies=["Your booking is confirmed."])
    (turn,) = call.of(TurnCompleted)
    assert (turn.transcript, turn.reply) == ("(pressed 1)", "Your booking is confirmed.")
    (asked,) = call.llm.seen
    assert (asked[-1].role, asked[-1].content) == ("user", "(pressed 1)")
    assert call.line.handed == []


def test_without_the_tool_0_is_just_a_key() -> None:
    call = _play([HangUp(gap_ms=3000)], keys=["0"], replies=["How can I help?"], tools=[])
    (turn,) = call.of(TurnCompleted)
    assert turn.transcript == "(pressed 0)"
    assert call.line.handed == []


def test_a_line_that_cannot_transfer_is_told_as_nobody_answering() -> None:
    """The session's own check: a line without `transfer` (the offline WAV line)."""

    async def main() -> list[Event]:
        clock = LoopClock()
        llm = ScriptedLanguageModel(
            clock, replies=[[tool_call("transfer_to_person", "{}")], "One moment."]
        )
        tts = ToneTextToSpeech(clock)
        engines = Engines(stt=ToneSpeechToText(clock), llm=llm, tts=tts, vad=EnergyVoiceActivity())

        async def answer(line: CallLine, sink: object) -> str:
            session = CallSession(
                line,
                engines,
                SessionConfig(persona=PERSONA),
                tools=ToolRegistry([transfer_tool([], OFFICE)]),
                phrases=PhraseCache(tts),
                clock=clock,
                sink=sink,  # type: ignore[arg-type]
            )
            return await session.run()

        steps = [Speak(say("hello")), HangUp(gap_ms=3000)]
        report = await run_wav_call(answer, steps, clock=clock, max_call_s=60)  # type: ignore[arg-type]
        return report.events

    events = run_virtual(main())
    (failed,) = [e for e in events if isinstance(e, TransferFailed)]
    assert "cannot transfer" in failed.reason
    assert any(isinstance(e, PhraseSpoken) and "can't take your call" in e.text for e in events)
