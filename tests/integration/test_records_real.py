"""A whole call through the real appliance and its records: row, turns, a two-channel recording,
then the post-call jobs with the real model and embedder, and a second call that knows the first.
"""

from __future__ import annotations

import pytest

from appliance.app import Appliance
from appliance.conversation.events import MemoryRecalled, TurnCompleted
from appliance.conversation.ports import CallInfo
from appliance.harness.call import run_wav_call
from appliance.harness.voices import caller_voice
from appliance.memory import callers, calls, jobs, vectors
from appliance.memory.notes import grounded_facts
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.records import stereo_channels

pytestmark = pytest.mark.asyncio(loop_scope="session")

NUMBER = "+15551230001"
FIRST = (
    "Hi, my name is Maria Lopez. I would like to book a table for four people on Friday "
    "evening. I am allergic to peanuts."
)


async def test_a_call_is_recorded_remembered_and_known_on_the_next_call(
    appliance: Appliance,
) -> None:
    records = appliance.records
    first = await run_wav_call(
        appliance.answer,
        [Speak(caller_voice(FIRST)), HangUp()],
        clock=appliance.clock,
        info=CallInfo(call_id="real-1", line="wav", caller=NUMBER, vouched=True),
    )
    assert first.ended == "caller hung up"

    # The call's row and every turn, both sides, as the caller heard them.
    call = await records.db.run(calls.find_call, "real-1")
    assert call is not None and call.outcome == "caller hung up" and call.ended is not None
    # The caller's three sentences are usually one turn; where the endpoint falls depends on
    # how fast each transcript came (a loaded machine), so the rows are checked against the
    # turns the session reported, however many there were.
    turns = await records.db.run(calls.turns_of, "real-1")
    completed = [e for e in first.events if isinstance(e, TurnCompleted)]
    assert completed and (turns[0].turn, turns[0].speaker) == (0, "agent")
    agent = [t for t in turns if t.speaker == "agent" and t.turn > 0]
    assert [(t.turn, t.text) for t in agent] == [(e.turn, e.reply) for e in completed]
    assert agent[-1].text and agent[-1].timings["turn"] > 0
    caller = {t.turn: t.text for t in turns if t.speaker == "caller"}
    assert all(caller[e.turn] == e.transcript for e in completed)
    said = " ".join(e.transcript for e in completed)
    assert "table" in said.lower()

    # Two channels: the caller's audio on the left, what the caller heard on the right.
    assert call.recording_state == "complete" and call.recording is not None
    left, right = stereo_channels(records.recordings / call.recording)
    assert left == b"".join(first.line.caller_audio)
    agent = b"".join(first.line.agent_audio)
    assert right == agent[: len(right)] and len(agent) - len(right) <= 640
    assert any(right) and any(left)

    # The post-call jobs: a summary by the model, facts it found in the caller's words, vectors.
    assert await records.runner.run_until_idle() >= 2  # type: ignore[union-attr]
    done = {j.kind: j for j in await records.db.run(jobs.jobs_of, "real-1")}
    assert done["summary"].state == "done" and done["memory"].state == "done"
    assert (done["email"].state, done["sms"].state) == ("skipped", "skipped")
    summary = await records.db.run(callers.summary_of, "real-1")
    assert summary
    memory = await records.db.run(callers.memory_of, NUMBER)
    assert memory.facts, done["memory"].result
    assert grounded_facts("\n".join(memory.facts), said) == list(memory.facts)
    assert await records.db.run(vectors.count_vectors, NUMBER) == 1 + len(memory.facts)

    # The next call from that number: what the agent knows is in its prompt, and recall finds
    # the first call when the caller brings it up.
    second = await run_wav_call(
        appliance.answer,
        [Speak(caller_voice("Hello again. Can I change my booking for Friday?")), HangUp()],
        clock=appliance.clock,
        info=CallInfo(call_id="real-2", line="wav", caller=NUMBER, vouched=True),
    )
    again = await records.db.run(calls.find_call, "real-2")
    assert again is not None
    assert summary in again.memory
    assert all(f"- {fact}" in again.memory for fact in memory.facts)
    recalled = [e for e in second.events if isinstance(e, MemoryRecalled)]
    assert recalled and "real-1" in {r.call_id for r in recalled[0].found}
