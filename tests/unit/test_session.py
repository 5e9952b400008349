"""The conversation engine end to end, with scripted engines, in virtual time."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from pydantic import BaseModel

from appliance.conversation.events import (
    AgentHungUp,
    MemoryRecalled,
    ReplyInterrupted,
    ToolCalled,
    ToolFinished,
    TranscriptFinal,
    TurnCompleted,
    TurnDiscarded,
)
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import Message, Recollection, TextDelta
from appliance.conversation.session import SessionConfig
from appliance.conversation.tools import Tool, ToolContext
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import PERSONA, play_call
from tests.support.fakes import ToneTextToSpeech, quiet, say, tool_call
from tests.support.virtual_time import run_virtual


def test_one_turn_is_heard_answered_and_remembered() -> None:
    call = play_call([Speak(say("hello", "weather")), HangUp()], replies=["It is sunny today."])

    turns = call.events(TurnCompleted)
    assert [(t.transcript, t.reply, t.interrupted) for t in turns] == [
        ("hello weather", "It is sunny today.", False)
    ]
    assert call.history[1:] == [
        ("assistant", "Hello there."),
        ("user", "hello weather"),
        ("assistant", "It is sunny today."),
    ]
    assert call.report.ended == "caller hung up"
    assert call.played_sentences(["Hello there.", "It is sunny today."]) == [
        "Hello there.",
        "It is sunny today.",
    ]


def test_turn_timings_cover_every_stage_and_add_up() -> None:
    call = play_call([Speak(say("hello")), HangUp()], replies=["Hi."])
    (turn,) = call.events(TurnCompleted)
    timings = turn.timings_ms
    assert set(timings) == {
        "endpoint",
        "stt",
        "llm_first_token",
        "first_sentence",
        "tts_first_audio",
        "turn",
    }
    # Scripted: STT 150 ms, first token 120 ms, TTS 50 ms; all start at the 160 ms pause.
    assert abs(timings["stt"] - 150) < 1
    assert abs(timings["llm_first_token"] - 120) < 1
    assert abs(timings["tts_first_audio"] - 50) < 1
    assert timings["turn"] >= timings["endpoint"]
    assert timings["turn"] < 160 + 150 + 120 + 50 + 60  # speculation overlapped the endpoint


def test_sentences_are_spoken_in_order_while_the_model_is_still_writing() -> None:
    text = "One is first. Two comes after that one. Three ends it."
    call = play_call(
        [Speak(say("hello")), HangUp()],
        replies=[text],
        tune=lambda f: setattr(f.llm, "token_s", 0.3),  # a slow model: 3 s for the reply
    )
    sentences = ["One is first.", "Two comes after that one.", "Three ends it."]
    assert call.fakes.tts.spoken[1:] == sentences
    assert call.played_sentences(["Hello there.", *sentences]) == ["Hello there.", *sentences]
    (turn,) = call.events(TurnCompleted)
    # The first sentence was heard long before the model finished (10 tokens x 300 ms).
    assert turn.timings_ms["first_sentence"] < 1200
    assert turn.reply == text


def test_the_model_waits_while_the_first_sentence_is_synthesized() -> None:
    call = play_call(
        [Speak(say("hello")), HangUp()],
        replies=["Yes, of course I can. Here is more text for later on."],
        tune=lambda f: (setattr(f.tts, "delay_s", 0.5), setattr(f.llm, "token_s", 0.01)),
    )
    first_sentence = call.fakes.tts.busy[1]  # [0] is the greeting
    during = [t for t in call.fakes.llm.produced_at if first_sentence[0] < t < first_sentence[1]]
    assert len(during) <= 1  # the one already produced when the hold began
    assert call.events(TurnCompleted)[0].reply.startswith("Yes, of course I can.")


def test_barge_in_stops_the_reply_and_history_keeps_only_what_was_heard() -> None:
    long_reply = (
        "The first sentence is fairly long indeed. "
        "The second sentence will never be heard. The third neither."
    )
    call = play_call(
        [
            Speak(say("hello")),
            Speak(say("no", "more"), after="agent-start", offset_ms=1500),
            HangUp(),
        ],
        replies=[long_reply, "Okay."],
    )
    (cut,) = call.events(ReplyInterrupted)
    assert cut.heard and long_reply.startswith(cut.heard)
    assert "never be heard" in cut.unsaid
    assistant = [text for role, text in call.history if role == "assistant"]
    assert assistant[1] == cut.heard + " ..."
    assert "never be heard" not in " ".join(assistant)
    # The line went quiet within 150 ms of the caller's voice starting.
    timeline = call.report.timeline
    barge = next(e for e in timeline if e.what == "caller-voice" and e.step == 1)
    stop = next(e for e in timeline if e.what == "agent-stop" and e.at_ms > barge.at_ms)
    assert stop.at_ms - barge.at_ms <= 150
    # And the caller's interruption became the next turn, which was answered.
    turns = call.events(TurnCompleted)
    assert [t.transcript for t in turns] == ["hello", "no more"]
    assert turns[0].interrupted and not turns[1].interrupted


def test_a_short_pause_is_not_the_end_of_the_turn() -> None:
    words = say("hello") + quiet(300) + say("weather")
    call = play_call([Speak(words), HangUp()], replies=["Sure."])
    assert [t.transcript for t in call.events(TurnCompleted)] == ["hello weather"]
    # The pause started a speculative reply, which the caller's second word discarded.
    assert [d.reason for d in call.events(TurnDiscarded)] == ["caller went on"]
    assert call.fakes.llm.seen[-1][-1].content == "hello weather"


def test_a_long_pause_ends_the_turn() -> None:
    config = SessionConfig(persona=PERSONA)
    words = say("hello") + quiet(1500) + say("weather")
    call = play_call([Speak(words), HangUp()], replies=["Hi.", "Rainy."], config=config)
    assert [t.transcript for t in call.events(TurnCompleted)][:2] == ["hello", "weather"]


def test_speech_right_after_the_endpoint_joins_the_turn_it_continues() -> None:
    # The caller goes on after 600 ms of silence (past the endpoint) but before any reply audio:
    # the slow model has not answered yet, so nothing was heard and the words are merged.
    words = say("hello") + quiet(600) + say("paris")
    call = play_call(
        [Speak(words), HangUp()],
        replies=["Paris it is."],
        tune=lambda f: setattr(f.llm, "first_token_s", 1.5),
    )
    turns = call.events(TurnCompleted)
    assert [t.transcript for t in turns] == ["hello paris"]
    assert turns[0].reply == "Paris it is."


def test_the_greeting_is_synthesized_once_for_many_calls() -> None:
    async def main() -> None:
        pass

    run_virtual(main())
    first = play_call([Speak(say("hello")), HangUp()], replies=["One."])
    cache = first.sessions[0]._phrases
    tts = first.fakes.tts
    second = play_call(
        [Speak(say("hello")), HangUp()],
        replies=["Two."],
        phrases=cache,
        tune=lambda f: setattr(f, "tts", tts),
    )
    assert tts.spoken.count("Hello there.") == 1
    assert second.played_sentences(["Hello there.", "Two."])[0] == "Hello there."


def test_a_silent_caller_is_prompted_then_politely_hung_up_on() -> None:
    config = SessionConfig(persona=PERSONA, no_input_timeout_s=3.0)
    call = play_call([Speak(quiet(1000))], config=config)
    assert call.report.ended == "no input"
    assert call.events(AgentHungUp) == [AgentHungUp(reason="no input")]
    heard = call.played_sentences(["Hello there.", "Still there?", "Bye for now."])
    assert heard == ["Hello there.", "Still there?", "Bye for now."]


class _City(BaseModel):
    city: str


def _weather_tool(runs: list[str]) -> Tool:
    async def run(arguments: BaseModel, _: ToolContext) -> str:
        assert isinstance(arguments, _City)
        runs.append(arguments.city)
        return f"Sunny in {arguments.city}"

    return Tool(name="get_weather", description="Weather for a city", arguments=_City, run=run)


def test_a_tool_call_runs_and_its_result_reaches_the_model() -> None:
    runs: list[str] = []
    call = play_call(
        [Speak(say("weather", "paris")), HangUp()],
        replies=[[tool_call("get_weather", '{"city": "Paris"}')], "It is sunny in Paris."],
        tools=[_weather_tool(runs)],
    )
    assert runs == ["Paris"]
    assert call.events(TurnCompleted)[0].reply == "It is sunny in Paris."
    second_prompt = call.fakes.llm.seen[-1]
    assert second_prompt[-1].role == "tool" and second_prompt[-1].content == "Sunny in Paris"
    roles = [role for role, _ in call.history]
    assert roles[-4:] == ["user", "assistant", "tool", "assistant"]


def test_malformed_tool_json_gets_one_repair_attempt() -> None:
    runs: list[str] = []
    call = play_call(
        [Speak(say("weather", "paris")), HangUp()],
        replies=[
            [tool_call("get_weather", '{"city": Paris')],
            [tool_call("get_weather", '{"city": "Paris"}')],
            "Sunny.",
        ],
        tools=[_weather_tool(runs)],
    )
    assert runs == ["Paris"]
    repair_prompt = call.fakes.llm.seen[1]
    assert repair_prompt[-1].role == "tool"
    assert "not valid JSON" in repair_prompt[-1].content
    assert call.events(TurnCompleted)[0].reply == "Sunny."


def test_malformed_tool_json_twice_gets_a_spoken_apology() -> None:
    runs: list[str] = []
    call = play_call(
        [Speak(say("weather", "paris")), HangUp()],
        replies=[
            [tool_call("get_weather", '{"town": "Paris"}')],
            [tool_call("get_weather", "not json")],
        ],
        tools=[_weather_tool(runs)],
    )
    assert runs == []
    assert call.events(TurnCompleted)[0].reply == "Sorry, I could not do that."
    assert [e.ok for e in call.events(ToolFinished)] == []
    assert len(call.events(ToolCalled)) == 2  # both attempts were reported


def test_no_tool_runs_for_a_turn_the_caller_had_not_finished() -> None:
    runs: list[str] = []
    words = say("weather") + quiet(300) + say("paris")
    call = play_call(
        [Speak(words), HangUp()],
        replies=[[tool_call("get_weather", '{"city": "London"}')]],
        tools=[_weather_tool(runs)],
        tune=lambda f: setattr(
            f.llm,
            "respond",
            lambda messages: (
                (
                    [tool_call("get_weather", '{"city": "Paris"}')]
                    if messages[-1].content == "weather paris"
                    else [tool_call("get_weather", '{"city": "London"}')]
                )
                if messages[-1].role == "user"
                else "Done."
            ),
        ),
    )
    assert runs == ["Paris"]
    assert call.events(TranscriptFinal)[0].text == "weather paris"


def test_the_end_call_tool_hangs_up_after_the_goodbye_is_heard() -> None:
    from appliance.tools.call import end_call

    call = play_call(
        [Speak(say("goodbye"))],
        replies=[[TextDelta("Goodbye!"), tool_call("end_call")], "Take care."],
        tools=[end_call],
    )
    assert call.report.ended == "agent ended the call"
    assert call.played_sentences(["Hello there.", "Goodbye!", "Take care."])[-1] == "Take care."


def test_an_engine_failure_is_apologised_for_and_the_call_goes_on() -> None:
    call = play_call(
        [Speak(say("hello")), Speak(say("weather")), HangUp()],
        replies=["Fine again."],
        tune=lambda f: setattr(f.llm, "fail", True),
    )
    turns = call.events(TurnCompleted)
    assert turns and all(t.reply == "Sorry, trouble." for t in turns)
    assert call.report.ended == "caller hung up"


def test_a_voice_that_fails_mid_call_is_apologised_for() -> None:
    phrases = {"Hello there.", "Sorry, trouble."}
    call = play_call(
        [Speak(say("hello")), HangUp()],
        replies=["Anything at all."],
        tune=lambda f: setattr(f.tts, "fail_unless", phrases.__contains__),
    )
    assert [t.reply for t in call.events(TurnCompleted)] == ["Sorry, trouble."]
    assert call.report.ended == "caller hung up"


def test_a_voice_that_never_works_still_ends_the_call_cleanly() -> None:
    config = SessionConfig(persona=PERSONA, no_input_timeout_s=2.0)
    call = play_call(
        [Speak(say("hello"))], config=config, tune=lambda f: setattr(f.tts, "fail", True)
    )
    assert call.report.ended == "no input"


def test_history_stays_bounded() -> None:
    config = SessionConfig(persona=PERSONA, max_history_turns=2)
    steps = [Speak(say(w)) for w in ("hello", "weather", "paris", "time")] + [HangUp()]
    call = play_call(steps, replies=["A.", "B.", "C.", "D."], config=config)
    users = [text for role, text in call.history if role == "user"]
    assert users == ["paris", "time"]
    assert call.history[0][0] == "system"


def test_a_phrase_cache_store_is_used_across_restarts() -> None:
    stored: dict[str, bytes] = {}

    class Store:
        def load(self, key: str) -> bytes | None:
            return stored.get(key)

        def save(self, key: str, pcm: bytes) -> None:
            stored[key] = pcm

    async def main() -> tuple[int, int]:
        from appliance.clock import LoopClock

        clock = LoopClock()
        first, second = ToneTextToSpeech(clock), ToneTextToSpeech(clock)
        await PhraseCache(first, Store()).get("Hello there.")
        pcm = await PhraseCache(second, Store()).get("Hello there.")
        return len(first.spoken) + len(second.spoken), len(pcm)

    synthesized, size = run_virtual(main())
    assert synthesized == 1 and size > 0


def test_config_replace_keeps_persona() -> None:
    config = replace(SessionConfig(persona=PERSONA), speculate=False)
    call = play_call([Speak(say("hello")), HangUp()], replies=["Hi."], config=config)
    assert [t.transcript for t in call.events(TurnCompleted)] == ["hello"]
    assert call.events(TurnDiscarded) == []


class _Remembers:
    """A Recall that knows two things about the caller, and how long it takes to say so."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.asked: list[str] = []
        self.delay_s = delay_s

    async def recall(self, said: str) -> list[Recollection]:
        self.asked.append(said)
        await asyncio.sleep(self.delay_s)
        return [
            Recollection(text="Booked a table for four.", call_id="c1", distance=0.1),
            Recollection(text="Allergic to peanuts.", call_id="c1", distance=0.2),
        ]


def test_the_call_context_follows_the_greeting_and_recall_joins_only_that_turn() -> None:
    remembers = _Remembers()
    context = [Message(role="system", content="Known: Allergic to peanuts.")]
    call = play_call(
        [Speak(say("book")), Speak(say("time")), HangUp()],
        replies=["Of course.", "Noon."],
        context=context,
        recall=remembers,
    )

    first = [(m.role, m.content) for m in call.fakes.llm.seen[0]]
    assert [role for role, _ in first] == ["system", "assistant", "system", "system", "user"]
    assert first[1] == ("assistant", "Hello there.")
    assert first[2] == ("system", "Known: Allergic to peanuts.")
    # Only what the context does not already say is added, just before the caller's words.
    assert first[3] == (
        "system",
        "From earlier calls with this caller:\n- Booked a table for four.",
    )
    assert first[4] == ("user", "book")
    # The recall note is not kept: the next turn's prompt has its own, after the history.
    second = [(m.role, m.content) for m in call.fakes.llm.seen[1]]
    assert second.count(first[3]) == 1 and second[-2] == first[3]
    assert remembers.asked == ["book", "time"]
    found = call.events(MemoryRecalled)
    assert [e.turn for e in found] == [1, 2]
    assert found[0].found[0].call_id == "c1"
    (turn, _) = call.events(TurnCompleted)
    assert "recall" in turn.timings_ms


def test_a_slow_recall_is_skipped_and_the_turn_goes_on() -> None:
    call = play_call(
        [Speak(say("book")), HangUp()],
        replies=["Of course."],
        recall=_Remembers(delay_s=5.0),
    )
    assert [m.role for m in call.fakes.llm.seen[0]] == ["system", "assistant", "user"]
    assert call.events(MemoryRecalled) == []
    assert [t.reply for t in call.events(TurnCompleted)] == ["Of course."]


def test_a_hang_up_during_a_reply_ends_the_turn_with_what_was_heard() -> None:
    # A slow voice leaves a long silence between the sentences, and the caller hangs up in it.
    call = play_call(
        [Speak(say("hello")), HangUp(gap_ms=1000, in_pause=True)],
        replies=["First part. Second part."],
        tune=lambda f: setattr(f.tts, "delay_s", 2.0),
    )
    assert call.report.ended == "caller hung up"
    (cut,) = call.events(ReplyInterrupted)
    assert (cut.heard, cut.unsaid) == ("First part.", "Second part.")
    (turn,) = call.events(TurnCompleted)
    assert (turn.transcript, turn.reply, turn.interrupted) == ("hello", "First part.", True)


class _HearsTheEnd:
    """An end-of-turn model that takes 60 ms and always says the same."""

    name = "scripted-turn"

    def __init__(self, probability: float, *, fail: bool = False) -> None:
        self.probability = probability
        self.fail = fail
        self.heard: list[int] = []

    async def complete(self, pcm: bytes) -> float:
        self.heard.append(len(pcm))
        await asyncio.sleep(0.06)
        if self.fail:
            raise RuntimeError("the model is broken")
        return self.probability


def _endpoint_ms(turn: _HearsTheEnd | None) -> float:
    call = play_call([Speak(say("hello")), HangUp()], replies=["Hi."], turn=turn)
    (completed,) = call.events(TurnCompleted)
    return float(completed.timings_ms["endpoint"])


def test_a_pause_that_sounds_unfinished_is_waited_out_longer() -> None:
    words_alone = _endpoint_ms(None)
    unfinished = _HearsTheEnd(0.02)
    finished = _HearsTheEnd(0.9)
    assert abs(_endpoint_ms(finished) - words_alone) < 1  # no veto: the words decide
    assert abs(_endpoint_ms(unfinished) - words_alone * 1.8) <= 20  # held (to a 20 ms frame)
    assert unfinished.heard and finished.heard  # each pause was scored


def test_a_broken_end_of_turn_model_leaves_it_to_the_words() -> None:
    assert abs(_endpoint_ms(_HearsTheEnd(0.02, fail=True)) - _endpoint_ms(None)) < 1
