"""A caller who talks on for minutes: what was not transcribed is said, not silently dropped."""

from __future__ import annotations

from appliance.conversation.events import TranscriptFinal, TurnCompleted
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.calls import play_call
from tests.support.fakes import say

WORDS = ["hello", "weather", "paris", "time", "more", "book"]


def test_speech_past_what_stt_hears_at_once_is_noted_in_the_turn() -> None:
    # 50 s without a pause: the endpointer ends a turn at 30 s; the caller goes on before its
    # reply is transcribed, so its audio is carried into the next turn, which then holds
    # more than STT hears at once.
    talk = say(*(WORDS * 20), word_ms=400, gap_ms=20)
    call = play_call(
        [Speak(talk), HangUp()],
        replies=["I see.", "I see."],
        tune=lambda f: setattr(f.stt, "delay_s", 0.5),
    )
    heard = [e.text for e in call.events(TranscriptFinal)]
    cut = [text for text in heard if text.startswith("[speech cut: the first ")]
    assert cut, heard
    seconds = int(cut[0].split("first ")[1].split(" s ")[0])
    assert 15 <= seconds <= 25, cut[0]
    assert "were not transcribed]" in cut[0]
    # The stored turn and what the model read carry the note too.
    assert any(t.transcript.startswith("[speech cut") for t in call.events(TurnCompleted))
    assert any("[speech cut" in str(m.content) for m in call.fakes.llm.seen[-1])


def test_a_turn_within_what_stt_hears_carries_no_note() -> None:
    call = play_call([Speak(say("hello", "weather")), HangUp()], replies=["Sunny."])
    assert all("[speech cut" not in e.text for e in call.events(TranscriptFinal))
