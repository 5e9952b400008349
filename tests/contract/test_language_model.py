"""The LanguageModel contract, for every adapter: llama.cpp, the scripted fake, a fallback chain."""

from __future__ import annotations

import asyncio
import json

import pytest

from appliance.clock import LoopClock
from appliance.conversation.persona import Persona
from appliance.conversation.ports import LanguageModel, Message, TextDelta, ToolCall, ToolSpec
from appliance.engines.fallback import FallbackLanguageModel, Option
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.tools.call import end_call
from appliance.tools.clock import current_time
from tests.support.fakes import ScriptedLanguageModel

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYSTEM = Message("system", "You are a helpful phone assistant. Answer in one short sentence.")
WEATHER = ToolSpec(
    name="get_weather",
    description="The current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _scripted(messages: list[Message]) -> object:
    if messages[-1].content.lower().startswith("what's the weather"):
        return [ToolCall(id="", name="get_weather", arguments='{"city": "Paris"}')]
    return "Hello! How can I help?"


# The real engines (and fallbacks onto them) load the installed models.
@pytest.fixture(
    params=[
        pytest.param("llama", marks=pytest.mark.models),
        "scripted",
        pytest.param("fallback", marks=pytest.mark.models),
    ]
)
def llm(request: pytest.FixtureRequest) -> LanguageModel:
    if request.param == "scripted":
        return ScriptedLanguageModel(LoopClock(), respond=_scripted)  # type: ignore[arg-type]
    llama = request.getfixturevalue("llama")
    if request.param == "llama":
        return llama  # type: ignore[no-any-return]
    broken = ScriptedLanguageModel(LoopClock(), fail=True, name="broken")
    return FallbackLanguageModel([Option(broken), Option(llama)])


async def test_text_streams_in_pieces(llm: LanguageModel) -> None:
    outputs = [o async for o in llm.stream([SYSTEM, Message("user", "Hello, who is this?")])]
    assert outputs and all(isinstance(o, TextDelta) for o in outputs)
    assert "".join(o.text for o in outputs if isinstance(o, TextDelta)).strip()


async def test_a_tool_call_arrives_whole_with_json_arguments(llm: LanguageModel) -> None:
    messages = [SYSTEM, Message("user", "What's the weather in Paris right now?")]
    outputs = [o async for o in llm.stream(messages, [WEATHER])]
    calls = [o for o in outputs if isinstance(o, ToolCall)]
    assert len(calls) == 1 and outputs[-1] is calls[0]
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"].lower() == "paris"


async def test_a_stream_can_be_abandoned_and_the_model_still_answers(llm: LanguageModel) -> None:
    stream = llm.stream([SYSTEM, Message("user", "Tell me a long story about a lighthouse.")])
    first = await anext(stream)  # type: ignore[call-overload]
    assert isinstance(first, TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    again = [o async for o in llm.stream([SYSTEM, Message("user", "Say hello.")])]
    assert again


async def test_the_conversation_so_far_is_not_evaluated_again(llama: LlamaLanguageModel) -> None:
    history = [SYSTEM, Message("user", "Hi, I'd like to ask about opening hours.")]
    first = [o async for o in llama.stream(history)]
    said = "".join(o.text for o in first if isinstance(o, TextDelta))
    history += [Message("assistant", said), Message("user", "And on Sundays?")]
    _ = [o async for o in llama.stream(history)]
    stats = llama.last_prompt
    assert stats.tokens > 60
    assert stats.evaluated < 20  # only "And on Sundays?" and the template around it


@pytest.mark.parametrize(
    "said",
    ["Hello again.", "Hello again. Can I change my booking for Friday?", "Hi, who is this?"],
)
async def test_a_spoken_reply_is_words_not_the_action_written_out(
    llama: LlamaLanguageModel, said: str
) -> None:
    # With the bare persona and tools offered, the 0.5B used to write the `speak` action out as
    # JSON after choosing it ('{"name": "speak", "description": "Say ...'), to be read aloud.
    persona = Persona.load(agent_name="Tess", business_name="TEL3SIS")
    tools = [end_call.spec, current_time(LoopClock()).spec]
    messages = [Message("system", persona.system_prompt), Message("user", said)]
    outputs = [o async for o in llama.stream(messages, tools)]
    text = "".join(o.text for o in outputs if isinstance(o, TextDelta)).strip()
    assert llama.last_action == "speak"
    assert text and text[0].isalpha(), text
    assert "speak" not in text and "{" not in text, text


def _opening() -> list[Message]:
    """Every call's opening: the persona's system prompt and greeting."""
    persona = Persona.load(agent_name="Tess", business_name="TEL3SIS")
    return [Message("system", persona.system_prompt), Message("assistant", persona.greeting)]


async def _reply(llama: LlamaLanguageModel, messages: list[Message]) -> str:
    outputs = [o async for o in llama.stream(messages)]
    return "".join(o.text for o in outputs if isinstance(o, TextDelta))


async def test_the_opening_comes_back_after_another_prompt_took_the_cache(
    llama: LlamaLanguageModel,
) -> None:
    # A post-call summary evaluates its own prompt in the same cache; the next call's first turn
    # must not evaluate the system prompt again (seconds a call on a board).
    opening = _opening()
    await llama.warm_up(opening)
    asked = [*opening, Message("user", "Hi, what is your name?")]
    first = await _reply(llama, asked)
    summary = [
        Message("system", "Summarize the call in one sentence."),
        Message("user", "Caller: I would like to book a table for four on Friday. " * 8),
    ]
    await _reply(llama, summary)
    assert llama.last_prompt.evaluated > 60  # the summary's prompt replaced the opening's
    assert await _reply(llama, asked) == first
    assert llama.last_prompt.evaluated < 20  # only the caller's words, not the persona again


async def test_a_call_keeps_its_cache_while_another_call_takes_a_turn(
    llama: LlamaLanguageModel,
) -> None:
    # Calls at once share the model: without each call's own cache, a call's turn after
    # another's evaluated its whole conversation again (seconds with the 1.5B on two cores).
    opening = _opening()
    await llama.warm_up(opening)
    opening_tokens = llama.last_prompt.tokens
    a = [
        *opening,
        Message("user", "Hi, I booked a check-up for my daughter last week and need to move it."),
    ]
    a.append(Message("assistant", await _reply(llama, a)))
    await _reply(llama, [*opening, Message("user", "What time do you open tomorrow?")])
    a.append(Message("user", "Is Friday morning free?"))
    await _reply(llama, a)
    assert llama.last_prompt.tokens - opening_tokens > 40  # all of A's turns, had it been lost
    assert llama.last_prompt.evaluated < 25, llama.last_prompt  # only its new words


async def _interleaved(
    first: LanguageModel, asked: list[Message], second: LanguageModel, then: list[Message]
) -> list[tuple[str, str]]:
    """`first` answers `asked`; once its first words are out, `second` is asked `then`: every
    piece of text as it arrived, each marked `first` or `second`."""
    heard: list[tuple[str, str]] = []
    other: asyncio.Task[None] | None = None

    async def ask_second() -> None:
        async for output in second.stream(then):
            if isinstance(output, TextDelta):
                heard.append(("second", output.text))  # noqa: PERF401 - as each arrives

    async for output in first.stream(asked):
        if isinstance(output, TextDelta):
            heard.append(("first", output.text))
            other = other or asyncio.create_task(ask_second())
    assert other is not None
    await other
    return heard


def _said(heard: list[tuple[str, str]], who: str) -> str:
    return "".join(text for w, text in heard if w == who)


SHORT_SENTENCES = Message("system", "You are a phone assistant. Answer in three short sentences.")
LONG = [SHORT_SENTENCES, Message("user", "Tell me about the sea.")]
SHORT = [SHORT_SENTENCES, Message("user", "What is two plus two?")]


async def test_a_summary_gives_the_model_up_to_a_call_and_never_holds_one_up(
    llama: LlamaLanguageModel,
) -> None:
    # A summary started before a call came in must not make its caller wait for all of it.
    alone = await _reply(llama, LONG)
    assert sum(alone.count(end) for end in ".!?") >= 2, alone
    short_alone = await _reply(llama, SHORT)
    jobs = llama.in_background()  # as post-call summaries use it
    during_summary = await _interleaved(jobs, LONG, llama, SHORT)
    # Greedy decoding: the same words, paused or not.
    assert (_said(during_summary, "first"), _said(during_summary, "second")) == (alone, short_alone)
    first_call = next(i for i, (who, _) in enumerate(during_summary) if who == "second")
    last_summary = max(i for i, (who, _) in enumerate(during_summary) if who == "first")
    assert first_call < last_summary, during_summary  # the call came before the summary's end
    before = _said(during_summary[:first_call], "first")
    assert before.rstrip()[-1] in ".!?", before  # ...at a sentence's end

    during_call = await _interleaved(llama, LONG, jobs, SHORT)
    whose = [who for who, _ in during_call]
    assert whose == sorted(whose), during_call  # the call's whole reply, then the summary's
    assert _said(during_call, "first") == alone


async def test_one_kept_cache_is_enough_for_one_call_and_a_summary(
    llama: LlamaLanguageModel,
) -> None:
    # One call at once keeps one other cache: a summary's, or the call's while the summary
    # goes on; each puts the other's back, neither evaluates its prompt again.
    opening = _opening()
    await llama.keep_conversations(1)
    try:
        await llama.warm_up(opening)
        call = [*opening, Message("user", "Hi, I need to move my daughter's check-up, please.")]
        call.append(Message("assistant", await _reply(llama, call)))
        summary = [
            Message("system", "Summarize the call in one sentence."),
            Message("user", "Caller: I would like to book a table for four on Friday. " * 4),
        ]
        summary.append(Message("assistant", await _reply(llama, summary)))
        call.append(Message("user", "Is Friday morning free?"))
        await _reply(llama, call)
        assert llama.last_prompt.evaluated < 25, llama.last_prompt
        summary.append(Message("user", "And in three words?"))
        await _reply(llama, summary)
        assert llama.last_prompt.evaluated < 25, llama.last_prompt
    finally:
        await llama.keep_conversations(4)
