"""The opening of a call when the caller talks first: answered, not greeted twice."""

from __future__ import annotations

from dataclasses import replace

import pytest

from appliance.conversation.events import (
    AgentStoppedSpeaking,
    CallerStartedSpeaking,
    PhraseSpoken,
    TurnCompleted,
    TurnDiscarded,
)
from appliance.conversation.session import SessionConfig, only_a_hello
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import PERSONA, play_call
from tests.support.fakes import say

GREETING = "Hello, this is Tess at Testing, the desk for tests. How can I help you today?"
"""About 4.7 s of the fake voice: long enough to be talked over."""

CONFIG = SessionConfig(persona=replace(PERSONA, greeting=GREETING))


def test_a_hello_over_the_greeting_leaves_it_whole_and_gets_no_second_greeting() -> None:
    call = play_call(
        [
            Speak(say("hello"), after="agent-start", offset_ms=300),
            Speak(say("weather")),
            HangUp(),
        ],
        replies=["It is sunny."],
        config=CONFIG,
    )
    (greeting,) = call.events(PhraseSpoken)
    assert not greeting.interrupted and greeting.heard == GREETING
    assert [d.reason for d in call.events(TurnDiscarded)] == ["a hello over the greeting"]
    # The model was asked once, for the real question; the hello never reached it.
    assert len(call.fakes.llm.seen) == 1 and call.fakes.llm.seen[0][-1].content == "weather"
    assert [(t.transcript, t.reply) for t in call.events(TurnCompleted)] == [
        ("weather", "It is sunny.")
    ]
    heard = [GREETING, "Still there?", "It is sunny."]
    assert call.played_sentences(heard) == [GREETING, "It is sunny."]


def test_a_question_over_the_greeting_cuts_it_once_said_and_is_answered_without_a_restart() -> None:
    call = play_call(
        [
            Speak(say("book", "weather", "paris", "time"), after="agent-start", offset_ms=300),
            HangUp(),
        ],
        replies=["Sure thing."],
        config=CONFIG,
    )
    (greeting,) = call.events(PhraseSpoken)
    assert greeting.interrupted and greeting.heard != GREETING
    # Cut once the caller had said more than a hello (700 ms of voice), not at their first sound.
    talked = call.events(CallerStartedSpeaking)[0].at
    stopped = call.events(AgentStoppedSpeaking)[0].at
    assert 0.7 <= stopped - talked < 1.0
    (turn,) = call.events(TurnCompleted)
    assert (turn.transcript, turn.reply) == ("book weather paris time", "Sure thing.")
    # Answered, not greeted again.
    assert call.played_sentences([GREETING, "Sure thing."]) == [GREETING, "Sure thing."]


@pytest.mark.parametrize(
    ("said", "hello"),
    [
        ("Hello?", True),
        ("Yes, hello.", True),
        ("Hi there.", True),
        ("Hello, I need a cleaning.", False),
        ("What time do you open?", False),
        ("", False),
    ],
)
def test_only_a_hello(said: str, hello: bool) -> None:
    assert only_a_hello(said) is hello
