"""Forgetting a caller, over a real database with sqlite-vec: by the tools on a call, and by
`appliance calls forget`. Recall finds nothing after; the call records stay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import apsw
import pytest

from appliance.cli import main
from appliance.conversation.ports import CallInfo
from appliance.conversation.tools import ToolContext
from appliance.memory import callers, calls, jobs, vectors
from appliance.memory.db import Database, connect
from appliance.memory.kept import KeptMemory
from appliance.memory.postcall import PostCall
from appliance.tools.memory import forget_me, what_you_remember
from tests.support.records import NO_NOTIFY

NUMBER = "+15550100"
OTHER = "+15550123"
T0 = 1_800_000_000.0


def _vector(axis: int) -> list[float]:
    vector = [0.0] * vectors.DIMENSIONS
    vector[axis] = 1.0
    return vector


def _remembered_call(conn: apsw.Connection, number: str, call_id: str, started: float) -> None:
    """A past call from `number` with what the memory job keeps: name, a fact, a summary."""
    calls.open_call(
        conn,
        CallInfo(call_id=call_id, line="sip", caller=number),
        started=started,
        owner="test",
        memory="What you know about this caller: - Allergic to peanuts",
    )
    calls.save_caller_words(
        conn, call_id, turn=1, text="My name is Maria.", started=1, ended=2, confidence=0.9
    )
    calls.end_call(conn, call_id, ended=started + 60, outcome="caller hung up")
    callers.note_call(conn, number, started)
    callers.set_summary(conn, call_id, "The caller wanted a table for four.", started + 61)
    callers.add_facts(conn, number, call_id, ["Allergic to peanuts"], started + 61)
    callers.set_name(conn, number, "Maria")
    for axis, (kind, text) in enumerate(
        [("summary", "The caller wanted a table for four."), ("fact", "Allergic to peanuts")]
    ):
        vectors.add_vector(
            conn,
            number,
            kind=kind,
            call_id=call_id,
            text=text,
            vector=_vector(axis),  # type: ignore[arg-type]
        )


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "tel3sis.db"
    conn = connect(path)
    _remembered_call(conn, NUMBER, "call-1", T0)
    _remembered_call(conn, OTHER, "call-9", T0)
    conn.close()
    return path


def _found(conn: apsw.Connection, number: str) -> list[str]:
    return [r.text for axis in (0, 1) for r in vectors.nearest(conn, number, _vector(axis))]


def test_forgetting_removes_name_facts_summaries_and_vectors_but_not_the_records(
    database: Path,
) -> None:
    conn = connect(database)
    assert _found(conn, NUMBER)  # recall would find them
    removed = callers.forget_caller(conn, NUMBER, T0 + 100)
    assert removed == callers.Forgotten(name=True, facts=1, summaries=1, vectors=2)

    assert _found(conn, NUMBER) == []
    memory = callers.memory_of(conn, NUMBER)
    assert (memory.name, list(memory.facts), list(memory.summaries), memory.calls) == (
        None,
        [],
        [],
        0,
    )
    call = calls.find_call(conn, "call-1")
    assert call is not None and call.memory == ""  # what that call's agent was told goes too
    assert [t.text for t in calls.turns_of(conn, "call-1")] == ["My name is Maria."]
    # Another caller's memory is untouched.
    assert callers.memory_of(conn, OTHER).facts == ["Allergic to peanuts"]
    assert len(_found(conn, OTHER)) == 4
    # A summary written later for a call that began before the forgetting (the jobs of the
    # call the caller asked on) is on its record, but not the caller's memory.
    callers.set_summary(conn, "call-1", "The caller asked to be forgotten.", T0 + 200)
    assert callers.memory_of(conn, NUMBER).summaries == []
    assert callers.summary_of(conn, "call-1") == "The caller asked to be forgotten."


def test_the_memory_job_of_a_call_that_began_before_the_forgetting_keeps_nothing(
    database: Path,
) -> None:
    async def main() -> list[jobs.JobRecord]:
        db = Database(database)
        await db.open()
        post_call = PostCall(
            db,
            llm=None,  # type: ignore[arg-type]  # never asked: the job stops first
            embedder=None,  # type: ignore[arg-type]
            mailer=None,
            texter=None,
            notify=NO_NOTIFY,
            recordings=database.parent,
            retention_days=0,
            remember=True,
            agent_name="Tess",
            business_name="Testing",
            wall=lambda: T0 + 300,
        )

        def setup(conn: apsw.Connection) -> None:
            callers.forget_caller(conn, NUMBER, T0 + 30)  # asked during call-1
            jobs.enqueue(conn, "memory", call_id="call-1", now=T0 + 60)

        await db.run(setup)
        runner = jobs.JobRunner(
            db, {"memory": post_call.memory}, owner="test", clock=_WallClock(T0 + 300)
        )
        await runner.run_until_idle()
        found = await db.run(jobs.jobs_of, "call-1")
        await db.aclose()
        return found

    (job,) = asyncio.run(main())
    assert (job.state, job.result) == ("skipped", "the caller asked to be forgotten")


class _WallClock:
    def __init__(self, wall: float) -> None:
        self._wall = wall

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))


def _context(
    caller: str, said: str = "Please forget everything about me.", *, vouched: bool = True
) -> ToolContext:
    return ToolContext(
        call=CallInfo(call_id="live", line="sip", caller=caller, vouched=vouched),
        caller_said={1: said},
    )


def test_the_tools_tell_the_caller_what_is_kept_and_forget_only_their_own(
    database: Path,
) -> None:
    async def main() -> list[str]:
        db = Database(database)
        await db.open()
        kept = KeptMemory(db, wall=lambda: T0 + 100, remember=True)
        told = what_you_remember(kept)
        forget = forget_me(kept)
        assert "name" not in told.arguments.model_fields
        assert told.spec.parameters["properties"] == {}
        assert forget.spec.parameters["properties"] == {}
        args = told.arguments()
        # The model naming the tool is not enough: the caller's words must ask for it.
        unasked = await forget.run(args, _context(NUMBER, "Can I change my booking for Friday?"))
        assert unasked.startswith("Not done: the caller did not ask to be forgotten")
        # A number on a line that does not vouch for it (a spoofed SIP From) is told nothing
        # and erases nothing: `before` below still has all of it.
        for tool in (told, forget):
            spoofed = await tool.run(args, _context(NUMBER, vouched=False))
            assert spoofed.startswith("Not done: this line cannot confirm the caller's number")
        said = [
            await told.run(args, _context(NUMBER)),
            await forget.run(args, _context(NUMBER)),
            await told.run(args, _context(NUMBER)),
            await forget.run(args, _context(NUMBER)),
            await told.run(args, _context("anonymous")),
            await forget.run(args, _context("anonymous")),
        ]
        await db.aclose()
        return said

    before, forgot, after, again, withheld, withheld_forget = asyncio.run(main())
    assert before.startswith(
        "Remembered about this caller from earlier calls: Their name: Maria. "
        "Notes: Allergic to peanuts. Call on "
    )
    assert "The caller wanted a table for four." in before
    assert forgot.startswith("Forgotten: their name, 1 note, 1 call summary.")
    for text in (before, forgot, after, again, withheld_forget):
        assert "Recordings and transcripts of their calls are kept" in text
    assert after.startswith("Nothing is remembered about this caller")
    assert again.startswith("Nothing was remembered to forget.")
    assert withheld.startswith("The caller's number is withheld")
    assert withheld_forget.startswith("The caller's number is withheld")

    conn = connect(database)
    assert _found(conn, NUMBER) == [] and len(_found(conn, OTHER)) == 4


def test_appliance_calls_forget_removes_a_callers_memory(
    database: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(database.parent))
    assert main(["calls", "forget", NUMBER, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "number": NUMBER,
        "calls": 1,
        "name": True,
        "facts": 1,
        "summaries": 1,
        "vectors": 2,
    }
    conn = connect(database)
    assert _found(conn, NUMBER) == [] and callers.memory_of(conn, NUMBER).empty
    assert callers.forgotten_at(conn, NUMBER) is not None

    assert main(["calls", "forget", "+15559999"]) == 0
    out = capsys.readouterr().out
    assert "no calls from '+15559999' are recorded" in out
    assert "forgot +15559999: 0 facts, 0 call summaries, 0 recall vectors" in out
