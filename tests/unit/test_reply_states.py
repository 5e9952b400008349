"""A reply's states: the transitions it may make, and the ones that are bugs."""

from __future__ import annotations

import asyncio

import pytest

from appliance.conversation.replies import Reply, ReplyState, Result
from appliance.conversation.think import Thought
from appliance.conversation.voice import SpeechChunk

P, C, PL = ReplyState.PREPARING, ReplyState.CONFIRMED, ReplyState.PLAYING
F, IN, D = ReplyState.FINISHED, ReplyState.INTERRUPTED, ReplyState.DISCARDED

_LEGAL = {
    (P, C), (P, D),
    (C, PL), (C, F), (C, IN), (C, D),
    (PL, F), (PL, IN), (PL, D),
}  # fmt: skip


def _at(state: ReplyState) -> Reply:
    reply = Reply(kind="turn", state=P)
    path = {P: [], C: [C], PL: [C, PL], F: [C, F], IN: [C, IN], D: [D]}[state]
    for step in path:
        reply.move(step)
    return reply


@pytest.mark.parametrize("start", list(ReplyState))
@pytest.mark.parametrize("to", list(ReplyState))
def test_only_the_drawn_transitions_are_allowed(start: ReplyState, to: ReplyState) -> None:
    reply = _at(start)
    if (start, to) in _LEGAL:
        reply.move(to)
        assert reply.state is to
    else:
        with pytest.raises(AssertionError, match=f"from {start.name} to {to.name}"):
            reply.move(to)
        assert reply.state is start


def test_a_reply_is_active_until_it_ends() -> None:
    assert [s for s in ReplyState if _at(s).active] == [P, C, PL]


def test_each_result_ends_in_its_state() -> None:
    assert {r: r.state for r in Result} == {
        Result.ANSWERED: F,
        Result.FAILED: F,
        Result.INTERRUPTED: IN,
        Result.DISCARDED: D,
    }


async def test_a_speculative_reply_waits_for_its_confirmation_and_a_phrase_does_not() -> None:
    phrase = Reply(kind="phrase", state=C)
    await asyncio.wait_for(phrase.confirmed(), 0.1)
    turn = Reply(kind="turn", state=P)
    waiting = asyncio.create_task(turn.confirmed())
    await asyncio.sleep(0)
    assert not waiting.done()
    turn.move(C)
    await asyncio.wait_for(waiting, 0.1)


def test_the_turn_timings_come_from_what_each_stage_reported() -> None:
    reply = Reply(kind="turn", state=P, speech_end=10.0, confirmed_at=10.5)
    reply.thought = Thought(started_at=10.2, first_output_at=10.3)
    reply.first_speech = SpeechChunk(0, "Hi.", b"", asked_at=10.4, at=10.45)
    reply.first_audio_at = 10.6
    spans = reply.spans()
    assert {name: (s.start, s.end) for name, s in spans.items() if s.start is not None} == {
        "endpoint": (10.0, 10.5),
        "llm_first_token": (10.2, 10.3),
        "first_sentence": (10.2, 10.4),
        "tts_first_audio": (10.4, 10.45),
        "turn": (10.0, 10.6),
    }
