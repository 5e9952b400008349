"""The live-call fan-out: a real session's events reach every watcher, slow ones lose the oldest."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from appliance.clock import LoopClock
from appliance.conversation.events import Event, EventSink, TranscriptFinal
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import CallInfo, CallLine
from appliance.conversation.session import CallSession, Conversation, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.call import run_wav_call
from appliance.observability.metrics import Metrics
from appliance.telephony.wavfile import HangUp, Speak
from appliance.web.live import LiveCalls, TooManyWatchers, Update
from tests.support.calls import PERSONA
from tests.support.fakes import ScriptedLanguageModel, ToneSpeechToText, ToneTextToSpeech, say
from tests.support.virtual_time import run_virtual


def _count(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


def test_a_watcher_sees_the_call_its_transcript_and_its_end() -> None:
    async def main() -> tuple[list[Update], list[list[Update]], list[Event], int]:
        clock = LoopClock()
        live = LiveCalls(clock=clock)
        engines = Engines(
            stt=ToneSpeechToText(clock),
            llm=ScriptedLanguageModel(clock, replies=["The weather is fine."]),  # type: ignore[list-item]
            tts=ToneTextToSpeech(clock),
            vad=EnergyVoiceActivity(),
        )
        phrases = PhraseCache(engines.tts)
        watcher = live.subscribe()
        during: list[list[Update]] = []
        forwarded: list[Event] = []

        def session(line: CallLine, sink: EventSink) -> Conversation:
            return CallSession(
                line,
                engines,
                SessionConfig(persona=PERSONA),
                tools=ToolRegistry([]),
                phrases=phrases,
                clock=clock,
                sink=sink,
            )

        async def watched(line: CallLine, sink: EventSink) -> str:
            with live.watch(line.info) as note:

                def both(event: Event) -> None:
                    sink(event)
                    note(event)

                return await session(line, both).run()

        def on_event(event: Event) -> None:
            forwarded.append(event)
            if isinstance(event, TranscriptFinal):
                during.append(live.snapshot())

        info = CallInfo(call_id="call-7", line="wav", caller="+15550107")
        await run_wav_call(
            watched,
            [Speak(say("weather")), HangUp()],
            clock=clock,
            info=info,
            on_event=on_event,
        )
        updates = await watcher.next()
        after = len(live)
        live.unsubscribe(watcher)
        return updates, during, forwarded, after

    updates, during, forwarded, after = run_virtual(main())
    kinds = [u["type"] for u in updates]
    assert kinds[0] == "call" and kinds[-1] == "ended"
    assert updates[0]["call"]["caller"] == "+15550107"
    lines = [(u["speaker"], u["text"]) for u in updates if u["type"] == "line"]
    assert ("caller", "weather") in lines
    assert ("agent", "The weather is fine.") in lines
    assert lines[0] == ("agent", "Hello there.")  # the greeting, as heard
    states = [u["state"] for u in updates if u["type"] == "state"]
    assert "caller speaking" in states and "agent speaking" in states
    assert all(u.get("id", "call-7") == "call-7" for u in updates)
    # While it ran, the call was listed with what had been said so far.
    assert during and during[0][0]["id"] == "call-7"
    assert during[0][0]["lines"][0]["text"] == "Hello there."
    assert after == 0
    assert any(isinstance(e, TranscriptFinal) for e in forwarded)  # the records' sink still ran


def _publish(live: LiveCalls, texts: Sequence[str]) -> None:
    call = live._begin(CallInfo(call_id="c", line="wav", caller="x"))
    for text in texts:
        live._note(call, TranscriptFinal(turn=1, text=text, confidence=1.0, engine="e"))


def test_a_slow_watcher_loses_the_oldest_updates_counted_and_is_resynced() -> None:
    async def main() -> None:
        metrics = Metrics()
        live = LiveCalls(clock=LoopClock(), metrics=metrics, queue_size=4)
        slow, fast = live.subscribe(), live.subscribe()
        _publish(live, ["one"])
        assert len(await fast.next()) == 3  # the call, a line, a state
        _publish(live, [f"word {i}" for i in range(5)])  # 11 more: the call again, 5 x 2
        kept = await slow.next()
        assert len(kept) == 4
        assert kept[-2:] == [
            {"type": "line", "speaker": "caller", "text": "word 4", "turn": 1, "id": "c"},
            {"type": "state", "state": "thinking", "id": "c"},
        ]
        assert slow.dropped == 3 + 11 - 4
        assert fast.dropped == 11 - 4
        assert _count(metrics, "tel3sis_live_updates_dropped_total") == 10 + 7
        slow.resynced()
        assert slow.dropped == 0

    asyncio.run(main())


def test_watchers_are_bounded_and_closing_ends_their_wait() -> None:
    async def main() -> None:
        live = LiveCalls(clock=LoopClock(), max_subscribers=2)
        first, second = live.subscribe(), live.subscribe()
        try:
            live.subscribe()
        except TooManyWatchers:
            pass
        else:
            raise AssertionError("a third watcher was let in")
        live.unsubscribe(first)
        third = live.subscribe()
        waiting = asyncio.create_task(second.next())
        await asyncio.sleep(0)
        live.close()
        assert await asyncio.wait_for(waiting, 1) == []
        assert third.closed and second.closed

    asyncio.run(main())
