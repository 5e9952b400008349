"""Speech over the agent on a line whose microphone hears the agent (`Echoing`): the agent is
held, and the speech cuts it off only if it goes on once the echo has died away.

The line here is a WavLine whose caller also hears, 60 ms late and at full level, everything
the agent plays: an echo canceller that has let all of it through. Without the hold, that echo
is a caller cutting in, and the agent stops itself; with it, the agent finishes its reply, and
a real caller talking over it still stops it at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence

import numpy as np

from appliance.audio.frame import FRAME_SAMPLES, rms_dbfs, silence
from appliance.clock import LoopClock
from appliance.conversation.events import (
    EchoDismissed,
    Event,
    ReplyFinished,
    ReplyInterrupted,
    TurnCompleted,
)
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import VoiceActivity
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.conversation.turns import Endpointer, TurnConfig
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.telephony.wavfile import HangUp, LineEvent, Speak, Step, WavLine
from tests.support.calls import PERSONA
from tests.support.fakes import ScriptedLanguageModel, ToneSpeechToText, ToneTextToSpeech, say
from tests.support.virtual_time import run_virtual

_DELAY_FRAMES = 3
_REPLY = "This reply is long enough to be heard for a while. And it goes on to a second part."


class _Leaky(WavLine):
    """A WavLine whose caller side carries the echo of the agent's audio."""

    def __init__(self, steps: Sequence[Step], *, clock: LoopClock) -> None:
        super().__init__(steps, clock=clock, max_call_s=60)
        self.held = False
        self._played: deque[bytes] = deque([silence()] * _DELAY_FRAMES, maxlen=_DELAY_FRAMES)

    def _take_agent_frame(self) -> bytes | None:
        frame = None if self.held else super()._take_agent_frame()
        self._echo = self._played[0]
        self._played.append(frame or silence())
        return frame

    async def listen(self) -> AsyncIterator[bytes]:
        async for frame in super().listen():
            yield _mixed(frame, self._echo)


class _Echoing(_Leaky):
    """The same line, `Echoing`: it holds the agent's audio when asked."""

    def hold(self) -> int:
        self.held = True
        return _DELAY_FRAMES + 2

    def release(self) -> None:
        self.held = False


class _Residual(_Echoing):
    """...whose echo leaves a quiet residue while the agent is held (-60 dBFS)."""

    async def listen(self) -> AsyncIterator[bytes]:
        residue = (np.full(FRAME_SAMPLES, 33, dtype="<i2")).tobytes()
        async for frame in super().listen():
            yield _mixed(frame, residue) if self.held else frame


class _Trailing:
    """A detector that, like Silero as an echo dies away, still says 0.7 for any sound at all."""

    name = "trailing"

    def detector(self) -> _Trailing:
        return self

    async def probability(self, frame: bytes) -> float:
        return 0.7 if rms_dbfs(frame) > -80.0 else 0.0


def _mixed(a: bytes, b: bytes) -> bytes:
    total = np.frombuffer(a, "<i2").astype(np.int32) + np.frombuffer(b, "<i2")
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


def _call(
    line_type: type[_Leaky], steps: Sequence[Step], vad: VoiceActivity | None = None
) -> tuple[list[Event], list[LineEvent]]:
    async def main() -> tuple[list[Event], list[LineEvent]]:
        clock = LoopClock()
        tts = ToneTextToSpeech(clock)
        engines = Engines(
            stt=ToneSpeechToText(clock),
            llm=ScriptedLanguageModel(clock, replies=[_REPLY, "Okay."]),
            tts=tts,
            vad=vad or EnergyVoiceActivity(),
        )
        line = line_type(steps, clock=clock)
        events: list[Event] = []

        def sink(event: Event) -> None:
            line.observe(event)
            events.append(event)

        session = CallSession(
            line, engines, SessionConfig(persona=PERSONA), tools=ToolRegistry([]),
            phrases=PhraseCache(tts), clock=clock, sink=sink,
        )  # fmt: skip
        async with asyncio.timeout(120):
            await session.run()
        return events, line.timeline

    return run_virtual(main())


def _replies(events: list[Event], kind: type) -> list[Event]:
    return [e for e in events if isinstance(e, kind) and getattr(e, "turn", 0) == 1]


def test_without_a_hold_the_agent_cuts_itself_off_on_its_own_echo() -> None:
    events, _ = _call(_Leaky, [Speak(say("hello")), HangUp()])
    assert _replies(events, ReplyInterrupted), events
    assert not _replies(events, ReplyFinished)


def test_held_for_its_echo_the_agent_finishes_its_reply() -> None:
    events, _ = _call(_Echoing, [Speak(say("hello")), HangUp()])
    assert not _replies(events, ReplyInterrupted), events
    (finished,) = _replies(events, ReplyFinished)
    assert isinstance(finished, ReplyFinished) and finished.text == _REPLY
    dismissed = [e for e in events if isinstance(e, EchoDismissed)]
    assert dismissed, "the echo never reached the caller side: this test tests nothing"
    # Each hold lasted as long as the echo and the pause that ended it, no longer.
    assert max(e.held_ms for e in dismissed) <= 20 * (_DELAY_FRAMES + 2) + 400
    # The echo was never taken for a turn of the caller's.
    turns = [e for e in events if isinstance(e, TurnCompleted)]
    assert [t.transcript for t in turns] == ["hello"]


def test_a_caller_talking_over_the_held_agent_still_cuts_it_off() -> None:
    events, timeline = _call(
        _Echoing,
        [
            Speak(say("hello")),
            Speak(say("no", "more"), after="agent-start", offset_ms=1500),
            HangUp(),
        ],
    )
    (cut,) = _replies(events, ReplyInterrupted)
    assert isinstance(cut, ReplyInterrupted) and cut.heard and _REPLY.startswith(cut.heard)
    # Within 150 ms of the caller's voice the agent was quiet (it may have been held for its
    # echo already), and it stayed quiet until the caller had finished.
    barge = next(e for e in timeline if e.what == "caller-voice" and e.step == 1)
    end = next(e for e in timeline if e.what == "caller-end" and e.step == 1)
    agent = [e for e in timeline if e.what in ("agent-start", "agent-stop")]
    at_150 = [e for e in agent if e.at_ms <= barge.at_ms + 150][-1]
    assert at_150.what == "agent-stop", agent
    assert not [e for e in agent if at_150.at_ms < e.at_ms <= end.at_ms], agent
    turns = [e for e in events if isinstance(e, TurnCompleted)]
    assert len(turns) == 2 and turns[0].interrupted and not turns[1].interrupted


def test_a_quiet_residue_the_detector_calls_speech_neither_cuts_nor_keeps_the_agent_held() -> None:
    """Past the echo's reach the residue is "speech" to a trailing detector but too quiet to be
    a person: it cuts nothing, and the hold ends within 0.5 s of the reach anyway (without
    that bound the detector, never falling to "silence", would hold the agent for good)."""
    events, _ = _call(_Residual, [Speak(say("hello")), HangUp()], vad=_Trailing())
    assert not _replies(events, ReplyInterrupted), events
    assert [e.text for e in _replies(events, ReplyFinished)] == [_REPLY]  # type: ignore[attr-defined]
    dismissed = [e for e in events if isinstance(e, EchoDismissed)]
    assert dismissed
    assert max(e.held_ms for e in dismissed) <= 20 * (_DELAY_FRAMES + 2 + 25 + 2)


def test_forgetting_a_turn_leaves_the_endpointer_quiet() -> None:
    endpointer = Endpointer(TurnConfig(min_speech_ms=40))
    loud = b"\x00\x10" * 320
    events = [e for i in range(5) for e in endpointer.push(loud, 1.0, i * 0.02)]
    assert endpointer.speaking and events
    endpointer.forget()
    assert not endpointer.speaking and endpointer.voiced_ms == 0
    # Silence after it ends nothing: there is no turn to end.
    assert [e for i in range(60) for e in endpointer.push(silence(), 0.0, 1 + i * 0.02)] == []
