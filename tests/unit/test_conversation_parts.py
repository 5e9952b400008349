"""The conversation's pure parts: sentence splitting, heard text, history, turn-taking, tools."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from appliance.audio.frame import silence
from appliance.conversation.heard import Spoken, split_heard
from appliance.conversation.history import History
from appliance.conversation.ports import CallInfo, Message, ToolCall
from appliance.conversation.sentences import SentenceSplitter, sentences, speakable
from appliance.conversation.tools import Tool, ToolArgumentsError, ToolContext, ToolRegistry
from appliance.conversation.turns import (
    Ended,
    Endpointer,
    Onset,
    Paused,
    Resumed,
    SilencePolicy,
    TurnConfig,
)

# --- sentences ---------------------------------------------------------------------------------


def _split(pieces: list[str], **options: int) -> list[str]:
    splitter = SentenceSplitter(**options)
    out = [s for piece in pieces for s in splitter.push(piece)]
    return out + splitter.flush()


def test_sentences_come_out_as_soon_as_they_are_whole() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello there.") == []  # not final until a space follows
    assert splitter.push(" How are") == ["Hello there."]
    assert splitter.push(" you? I") == ["How are you?"]
    assert splitter.flush() == ["I"]


def test_abbreviations_decimals_and_initials_do_not_end_sentences() -> None:
    text = "Dr. Smith paid $3.50 at 5 p.m. today, e.g. by card. J. R. Hartley agreed."
    assert _split(list(text), first_clause_words=99) == [
        "Dr. Smith paid $3.50 at 5 p.m. today, e.g. by card.",
        "J. R. Hartley agreed.",
    ]


def test_only_the_first_clause_is_released_early() -> None:
    text = "Sure, I can help with that, and I will check the calendar now. Then we book it."
    pieces = text.split(" ")[:1] + [" " + w for w in text.split(" ")[1:]]
    assert _split(pieces) == [
        "Sure,",
        "I can help with that, and I will check the calendar now.",
        "Then we book it.",
    ]
    assert _split(pieces, first_clause_words=3) == [
        "Sure, I can help with that,",
        "and I will check the calendar now.",
        "Then we book it.",
    ]


def test_a_first_clause_that_runs_on_is_cut_after_a_bounded_number_of_words() -> None:
    """The model echoing a long passage with no comma: the caller hears its first words while
    the rest is written, not silence until the sentence ends."""
    text = "Go forward ten meters and then turn left at the second big oak tree by the gate now."
    pieces = [" " + w for w in text.split(" ")]
    first, *rest = _split(pieces)
    assert first == "Go forward ten meters and then turn left at the second big"
    assert rest == ["oak tree by the gate now."]
    assert _split(pieces, first_max_words=99) == [text]


def test_markdown_lists_and_emoji_are_not_read_out() -> None:
    assert speakable("**Great** news 🎉 see [the page](http://x.y)") == "Great news see the page"
    assert _split(["Options:\n- one thing\n- another thing\n"]) == [
        "Options:",
        "one thing",
        "another thing",
    ]


def test_a_run_on_reply_is_cut_at_a_space() -> None:
    out = _split(["word " * 100], max_chars=50)
    assert all(len(s) <= 50 for s in out) and " ".join(out) == ("word " * 100).strip()


async def test_the_stage_preserves_order() -> None:
    async def pieces():  # type: ignore[no-untyped-def]
        for piece in ["One. ", "Two", " two. Thr", "ee."]:
            await asyncio.sleep(0)
            yield piece

    assert [s async for s in sentences(pieces())] == ["One.", "Two two.", "Three."]


# --- heard -------------------------------------------------------------------------------------


def test_heard_text_follows_the_playback_position() -> None:
    spoken = [Spoken("First one.", 0, 50), Spoken("Second sentence here.", 50, 150)]
    assert split_heard(spoken, 150) == ("First one. Second sentence here.", "")
    assert split_heard(spoken, 50) == ("First one.", "Second sentence here.")
    assert split_heard(spoken, 0) == ("", "First one. Second sentence here.")
    heard, unsaid = split_heard(spoken, 125)  # three quarters of the second sentence
    assert heard == "First one. Second sentence"
    assert unsaid == "here."


# --- history -----------------------------------------------------------------------------------


def test_history_is_trimmed_by_turns_and_size_but_keeps_the_system_prompt() -> None:
    history = History([Message("system", "S")], max_turns=2, max_chars=1000)
    for n in range(4):
        history.add(Message("user", f"u{n}"))
        history.add(Message("assistant", f"a{n}"))
    assert [m.content for m in history.messages()] == ["S", "u2", "a2", "u3", "a3"]
    small = History([Message("system", "S")], max_turns=10, max_chars=30)
    for n in range(5):
        small.add(Message("user", "x" * 10))
        small.add(Message("assistant", f"reply {n}"))
    assert small.messages()[0].content == "S"
    assert sum(len(m.content) for m in small.messages()[1:]) <= 30
    assert small.messages()[-1].content == "reply 4"


def test_a_tool_result_is_never_separated_from_its_call() -> None:
    history = History([], max_turns=1)
    call = ToolCall(id="1", name="t", arguments="{}")
    history.add(Message("user", "q"))
    history.add(Message("assistant", "", tool_calls=(call,)))
    history.add(Message("tool", "r", tool_call_id="1"))
    history.add(Message("assistant", "a"))
    assert [m.role for m in history.messages()] == ["user", "assistant", "tool", "assistant"]


# --- turn-taking -------------------------------------------------------------------------------


def _run(probabilities: list[float], config: TurnConfig | None = None) -> list[tuple[int, object]]:
    endpointer = Endpointer(config or TurnConfig())
    events = []
    for i, p in enumerate(probabilities):
        events += [(i, e) for e in endpointer.push(silence(), p, at=i * 0.02)]
    return events


def test_onset_needs_sustained_speech() -> None:
    blips = [0.0] * 10 + [0.9, 0.9, 0.1] * 5 + [0.0] * 10  # 40 ms bursts: clicks, not speech
    assert _run(blips) == []
    events = _run([0.0] * 10 + [0.9] * 10)
    assert [type(e) for _, e in events] == [Onset]
    assert events[0][0] == 15 and events[0][1].at == pytest.approx(0.2)  # back-dated to frame 10


def test_pause_then_end_carry_the_same_audio_and_speech_end() -> None:
    events = _run([0.0] * 5 + [0.9] * 50 + [0.0] * 40)
    kinds = [type(e) for _, e in events]
    assert kinds == [Onset, Paused, Ended]
    (_, paused), (i_end, ended) = events[1], events[2]
    assert isinstance(paused, Paused) and isinstance(ended, Ended)
    assert paused.audio == ended.audio and paused.speech_end == ended.speech_end
    assert ended.speech_end == pytest.approx(54 * 0.02)
    assert (i_end - 54) * 20 == 500  # the default endpoint silence


def test_speech_after_a_pause_resumes_the_same_turn() -> None:
    events = _run([0.9] * 20 + [0.0] * 12 + [0.9] * 20 + [0.0] * 40)
    assert [type(e) for _, e in events] == [Onset, Paused, Resumed, Paused, Ended]


def test_hysteresis_keeps_a_soft_syllable_inside_the_turn() -> None:
    events = _run([0.9] * 20 + [0.4] * 30 + [0.0] * 40)  # 0.4 is above the stop threshold
    ended = [e for _, e in events if isinstance(e, Ended)]
    assert ended and ended[0].speech_end == pytest.approx(49 * 0.02)


def test_the_transcript_moves_the_endpoint() -> None:
    policy = SilencePolicy(500)
    assert policy.endpoint_ms(None) == 500
    assert policy.endpoint_ms("I'd like to book a table.") == 350
    assert policy.endpoint_ms("I'd like to book a table and") == 900
    assert policy.endpoint_ms("so um") == 900
    assert policy.endpoint_ms("Is that right?") == 350
    # tiny.en's punctuation on a fragment is not trusted: the last word says it is unfinished
    assert policy.endpoint_ms("I'd like to book a table for.") == 900
    assert policy.endpoint_ms("Can I come in on?") == 900
    assert policy.endpoint_ms("What time do you open on Saturday?") == 350
    assert policy.endpoint_ms("Could you tell me your") == 900
    assert policy.endpoint_ms("Yes, I can.") == 350


def test_a_hint_ends_a_complete_turn_sooner() -> None:
    endpointer = Endpointer(TurnConfig())
    for i in range(20):
        endpointer.push(silence(), 0.9, at=i * 0.02)
    endpointer.hint("That is all.")
    ended_at = next(
        i
        for i in range(100)
        if any(isinstance(e, Ended) for e in endpointer.push(silence(), 0.0, 1 + i))
    )
    assert (ended_at + 1) * 20 == 360  # 0.7 x 500 ms, rounded up to whole frames


def test_a_voice_that_sounds_unfinished_holds_the_turn_whatever_the_words() -> None:
    policy = SilencePolicy(500)
    assert policy.endpoint_ms("I'd like to book a table.", complete=0.03) == 900  # vetoed
    assert policy.endpoint_ms("I'd like to book a table.", complete=0.5) == 350
    assert policy.endpoint_ms(None, complete=0.01) == 900  # before the words are known
    assert policy.endpoint_ms("I'd like to book a table for.", complete=0.99) == 900


def _ended_after(endpointer: Endpointer, *, frames: int = 100) -> int:
    """Silent frames pushed until the turn ends, counted from 1."""
    return next(
        i + 1
        for i in range(frames)
        if any(isinstance(e, Ended) for e in endpointer.push(silence(), 0.0, 1 + i * 0.02))
    )


def test_an_end_of_turn_score_counts_only_for_the_pause_it_heard() -> None:
    endpointer = Endpointer(TurnConfig())
    for i in range(20):
        endpointer.push(silence(), 0.9, at=i * 0.02)
    endpointer.sounds_complete(0.01, pause=endpointer.pauses)  # no pause yet: too early
    for i in range(8):  # 160 ms: the first pause
        endpointer.push(silence(), 0.0, at=1 + i * 0.02)
    first = endpointer.pauses
    endpointer.push(silence(), 0.9, at=2.0)  # the caller goes on
    endpointer.sounds_complete(0.01, pause=first)  # the first pause's score comes late
    assert _ended_after(endpointer) * 20 == 500  # dropped: the base wait

    endpointer = Endpointer(TurnConfig())
    for i in range(20):
        endpointer.push(silence(), 0.9, at=i * 0.02)
    for i in range(8):
        endpointer.push(silence(), 0.0, at=1 + i * 0.02)
    endpointer.hint("That is all.")
    endpointer.sounds_complete(0.01, pause=endpointer.pauses)
    assert (_ended_after(endpointer) + 8) * 20 == 900  # held, though the words sound done


def test_a_very_long_turn_is_ended_anyway() -> None:
    events = _run([0.9] * 150, TurnConfig(max_turn_ms=2000))
    assert [type(e) for _, e in events][:2] == [Onset, Ended]
    assert events[1][0] * 20 <= 2000


# --- tools -------------------------------------------------------------------------------------


class _Args(BaseModel):
    city: str
    days: int = 1


async def _weather(arguments: BaseModel, _: ToolContext) -> str:
    assert isinstance(arguments, _Args)
    return f"{arguments.city} for {arguments.days} days"


async def _broken(_: BaseModel, __: ToolContext) -> str:
    raise RuntimeError("the service is down")


async def _slow(_: BaseModel, __: ToolContext) -> str:
    await asyncio.sleep(5)
    return "late"


REGISTRY = ToolRegistry(
    [
        Tool("weather", "Weather", _Args, _weather),
        Tool("broken", "Fails", _Args, _broken),
        Tool("slow", "Slow", _Args, _slow, timeout_s=0.05),
    ]
)
CONTEXT = ToolContext(call=CallInfo("c", "wav", "x"))


def test_tool_specs_are_json_schema_without_noise() -> None:
    spec = REGISTRY.specs()[0]
    assert spec.parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"default": 1, "type": "integer"}},
        "required": ["city"],
    }


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("nope", "{}", "no tool named 'nope'; the tools are: broken, slow, weather"),
        ("weather", '{"city": ', "not valid JSON"),
        ("weather", "[1, 2]", "must be a JSON object"),
        ("weather", '{"town": "Paris"}', "city: Field required"),
        ("weather", '{"city": "Paris", "days": "many"}', "days: Input should be a valid integer"),
    ],
)
def test_bad_tool_calls_are_explained_for_the_model(
    name: str, arguments: str, message: str
) -> None:
    with pytest.raises(ToolArgumentsError, match=message):
        REGISTRY.parse(ToolCall(id="1", name=name, arguments=arguments))


async def test_tools_run_and_failures_become_text() -> None:
    def call(name: str) -> ToolCall:
        return ToolCall(id="1", name=name, arguments='{"city": "Oslo", "days": 2}')

    async def run(name: str) -> tuple[bool, str]:
        return await REGISTRY.run(call(name), REGISTRY.parse(call(name)), CONTEXT)

    assert await run("weather") == (True, "Oslo for 2 days")
    assert await run("broken") == (False, "error: broken failed: the service is down")
    assert await run("slow") == (False, "error: slow did not answer within 0 seconds")
