"""Truthful records, end to end with scripted engines in virtual time, a real database and e5:
a summary tells only what the record holds, a misheard name is not kept, and a caller who asks
is told what is remembered and forgotten."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance.clock import LoopClock
from appliance.conversation.ports import Transcript
from appliance.conversation.tools import Tool, ToolContext, ToolRegistry
from appliance.memory import actions, callers, calls, vectors
from appliance.memory.db import connect
from appliance.memory.recall import CallerRecall
from appliance.telephony.wavfile import HangUp, Speak
from appliance.tools.memory import forget_me, what_you_remember
from tests.support.fakes import ToneSpeechToText, say, tool_call
from tests.support.records import RecordsKit, run_records

NUMBER = "+15550100"
# The model is tempted: the agent promised a text that was never sent, and says so in a way a
# summary could repeat as a deed.
PROMISE = "Sure, I'll text you our opening hours right away."
TEMPTED_SUMMARY = (
    "The caller Corral wanted the opening hours, and the assistant texted them a summary."
)
TEMPTED_FACTS = "- Name: Corral\n- Corral\n- Wants the opening hours by text\n- Was texted"
_DEED = re.compile(r"\b(texted|sent (?:a|the|them|you)|emailed|transferred)\b", re.IGNORECASE)


@dataclass
class HeardAs:
    """Speech-to-text that hears the tone words of `say()` as the scripted sentence, with the
    scripted confidence: what a real engine hears of a real caller, mistakes included."""

    tones: ToneSpeechToText
    heard: dict[str, tuple[str, float]]
    name: str = "heard-as"
    calls: list[str] = field(default_factory=list)

    async def transcribe(self, pcm: bytes) -> Transcript:
        tones = await self.tones.transcribe(pcm)
        self.calls.append(tones.text)
        text, confidence = self.heard.get(tones.text, (tones.text, tones.confidence))
        return Transcript(text=text, confidence=confidence, engine=self.name)


def _db(root: Path) -> object:
    return connect(root / "data" / "tel3sis.db")


@pytest.mark.parametrize(("confidence", "kept_name"), [(0.41, None), (0.93, "Corral")])
def test_a_misheard_name_is_kept_only_when_heard_with_confidence_and_no_text_is_invented(
    tmp_path: Path, models_dir: Path, confidence: float, kept_name: str | None
) -> None:
    async def main() -> None:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Hello!", PROMISE]).open()
        kit.stt = HeardAs(  # type: ignore[assignment]
            kit.stt,
            {
                "hello": ("Hi, my name is Corral.", confidence),
                "time": ("Can you text me your opening hours?", 0.92),
            },
        )
        try:
            await kit.call([Speak(say("hello")), Speak(say("time")), HangUp()])
            kit.job_llm.replies = [TEMPTED_SUMMARY, TEMPTED_FACTS]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
        finally:
            kit.close()

    run_records(main())
    conn = connect(tmp_path / "data" / "tel3sis.db")
    turns = calls.turns_of(conn, "call-1")
    assert [(t.text, t.confidence) for t in turns if t.speaker == "caller"] == [
        ("Hi, my name is Corral.", confidence),
        ("Can you text me your opening hours?", 0.92),
    ]
    assert any(t.text == PROMISE for t in turns)
    assert actions.actions_of(conn, "call-1") == []  # no tool ran: nothing was sent

    summary = callers.summary_of(conn, "call-1")
    assert summary is not None
    assert not _DEED.search(summary), summary
    assert summary.endswith("No text or email was sent during the call.")

    memory = callers.memory_of(conn, NUMBER)
    assert memory.name == kept_name
    # The name is never a "fact"; the caller's sure words back only their wish.
    assert list(memory.facts) == ["Wants the opening hours by text"]
    rows = conn.execute("SELECT text FROM memory_vectors WHERE caller = ?", (NUMBER,))
    kept = [*memory.facts, *(s for _, s in memory.summaries), *(text for (text,) in rows)]
    assert len(kept) == 4  # the fact and the summary, each kept and embedded
    assert not any(_DEED.search(text) for text in kept)
    if kept_name is None:
        # Misheard, "Corral" is nowhere in what the next call is given.
        assert not any("Corral" in text for text in kept)


def test_an_agent_that_never_answered_is_recorded_as_silent(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> None:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["It is sunny.", "Yes."]).open()
        # The voice fails for everything but the greeting: the caller hears no answer.
        kit.tts.fail_unless = lambda text: text == "Hello there."
        try:
            await kit.call([Speak(say("weather", "paris")), Speak(say("hello")), HangUp()])
            kit.job_llm.replies = ["The caller wanted the weather in Paris."]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
        finally:
            kit.close()

    run_records(main())
    conn = connect(tmp_path / "data" / "tel3sis.db")
    summary = callers.summary_of(conn, "call-1")
    # Unanswered, the caller fell silent and the agent hung up (its goodbye was not heard).
    assert summary == (
        "The caller wanted the weather in Paris. The agent never answered: the caller heard "
        "no reply to what they said. The agent ended the call (no input)."
    )


class _City(BaseModel):
    city: str


async def _weather(_: BaseModel, __: ToolContext) -> str:
    return "Sunny, 21 degrees."


async def _send_sms(_: BaseModel, __: ToolContext) -> str:
    raise RuntimeError("Twilio answered 401")


TOOLS = ToolRegistry(
    [
        Tool(name="get_weather", description="Weather.", arguments=_City, run=_weather),
        Tool(name="send_sms", description="Text the caller.", arguments=_City, run=_send_sms),
    ]
)


def test_a_summary_lists_the_tools_that_ran_and_says_a_failed_text_was_not_sent(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> None:
        replies: list[object] = [
            [tool_call("get_weather", '{"city": "Paris"}')],
            "It is sunny in Paris.",
            [tool_call("send_sms", '{"city": "Paris"}')],
            "I have texted you the weather.",
        ]
        kit = await RecordsKit(tmp_path, LoopClock(), replies=replies, tools=TOOLS).open()
        try:
            await kit.call([Speak(say("weather", "paris")), Speak(say("yes")), HangUp()])
            kit.job_llm.replies = ["The caller wanted the weather in Paris texted to them."]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
        finally:
            kit.close()

    run_records(main())
    conn = connect(tmp_path / "data" / "tel3sis.db")
    done = actions.actions_of(conn, "call-1")
    assert [(a.turn, a.kind, a.name, a.ok) for a in done] == [
        (1, "tool", "get_weather", True),
        (2, "tool", "send_sms", False),
    ]
    assert done[0].arguments == '{"city": "Paris"}' and done[0].result == "Sunny, 21 degrees."
    summary = callers.summary_of(conn, "call-1")
    assert summary is not None
    # The model's sentence says the caller asked for a text ("texted to them"): a deed's word,
    # so the caller's own words stand in for it.
    assert summary.startswith('The caller said: "weather paris yes"'), summary
    assert "Tools run: get_weather (ok), send_sms (failed)." in summary
    assert "No text or email was sent during the call." in summary


def test_a_caller_is_told_what_is_remembered_and_forgotten_when_they_ask(
    tmp_path: Path, models_dir: Path
) -> None:
    said: dict[str, object] = {}

    async def main() -> None:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["It is sunny in Paris."]).open()
        kit.tools = ToolRegistry([what_you_remember(kit.records.kept), forget_me(kit.records.kept)])
        try:
            await kit.call([Speak(say("weather", "paris")), HangUp()])
            kit.job_llm.replies = [
                "The caller wanted the weather in Paris.",
                "- Asks about the weather in Paris",
            ]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            recall = CallerRecall(kit.records.db, kit.embedder, NUMBER)
            said["recalled before"] = await recall.recall("weather in paris")

            kit.llm.replies = [
                [tool_call("what_you_remember")],
                "I remember you asked about the weather in Paris.",
                [tool_call("forget_me")],
                "Done, I have forgotten it.",
            ]
            await kit.call(
                [Speak(say("help")), Speak(say("forget", "me")), HangUp()], call_id="call-2"
            )
            kit.job_llm.replies = ["The caller wanted to be forgotten.", "- Wants no memory"]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            said["recalled after"] = await recall.recall("weather in paris")

            kit.llm.replies = ["Hello."]
            await kit.call([Speak(say("hello")), HangUp()], call_id="call-3")
            said["prompt"] = [m.content for m in kit.llm.seen[-1]]
        finally:
            kit.close()

    run_records(main())
    conn = connect(tmp_path / "data" / "tel3sis.db")
    told = {a.name: a for a in actions.actions_of(conn, "call-2")}
    assert told["what_you_remember"].ok
    assert "Asks about the weather in Paris" in told["what_you_remember"].result
    assert "The caller wanted the weather in Paris." in told["what_you_remember"].result
    assert told["forget_me"].ok
    assert told["forget_me"].result.startswith("Forgotten: 1 note, 1 call summary.")
    assert "Recordings and transcripts" in told["forget_me"].result

    # Recall found the first call before, and finds nothing after; the next call knows nothing.
    assert [r.call_id for r in said["recalled before"]] == ["call-1", "call-1"]  # type: ignore[attr-defined]
    assert said["recalled after"] == []
    assert vectors.count_vectors(conn, NUMBER) == 0
    memory = callers.memory_of(conn, NUMBER)
    assert (memory.name, list(memory.facts), list(memory.summaries)) == (None, [], [])
    call3 = calls.find_call(conn, "call-3")
    assert call3 is not None and call3.memory == ""
    assert not any("Paris" in str(content) for content in said["prompt"])  # type: ignore[attr-defined]
    # The records themselves stay: both calls' transcripts, and the forgetting call's summary
    # for the operator, though it is not the caller's memory.
    assert [t.text for t in calls.turns_of(conn, "call-1") if t.speaker == "caller"] == [
        "weather paris"
    ]
    assert callers.summary_of(conn, "call-2") is not None
    assert callers.summary_of(conn, "call-1") is None
