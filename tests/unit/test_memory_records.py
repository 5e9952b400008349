"""A call's records, end to end with scripted engines in virtual time, a real database and e5."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import apsw
import pytest

from appliance.clock import LoopClock
from appliance.conversation.events import (
    MemoryRecalled,
    ReplyInterrupted,
    TranscriptFinal,
    TurnCompleted,
)
from appliance.conversation.ports import CallInfo
from appliance.harness.call import run_wav_call
from appliance.memory import callers, calls, jobs, vectors
from appliance.memory.db import connect
from appliance.memory.records import recording_name
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import quiet, say
from tests.support.records import RecordsKit, run_records, stereo_channels

LONG_REPLY = "The first sentence is fairly long indeed. The second one is never heard at all."


def _read(root: Path, call_id: str) -> tuple[calls.CallRecord, list[calls.TurnRecord]]:
    conn = connect(root / "data" / "tel3sis.db")
    call = calls.find_call(conn, call_id)
    assert call is not None
    return call, calls.turns_of(conn, call_id)


def test_a_call_leaves_its_row_every_turn_and_a_recording_of_what_each_side_heard(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> object:
        kit = await RecordsKit(
            tmp_path, LoopClock(), replies=["It is sunny.", LONG_REPLY, "Ok."]
        ).open()
        try:
            return await kit.call(
                [
                    Speak(say("hello", "weather")),
                    Speak(say("time")),
                    Speak(say("no", "more"), after="agent-start", offset_ms=1200),
                    HangUp(),
                ]
            )
        finally:
            kit.close()

    report = run_records(main())
    call, turns = _read(tmp_path, "call-1")

    assert call.outcome == "caller hung up" and call.ended is not None
    assert (call.caller, call.callee, call.line) == ("+15550100", "+15550199", "wav")
    assert call.recording_state == "complete"
    spoken = [(t.turn, t.speaker, t.text, t.interrupted) for t in turns]
    (cut,) = [e for e in report.events if isinstance(e, ReplyInterrupted)]  # type: ignore[attr-defined]
    assert spoken == [
        (0, "agent", "Hello there.", False),
        (1, "caller", "hello weather", False),
        (1, "agent", "It is sunny.", False),
        (2, "caller", "time", False),
        (2, "agent", cut.heard, True),
        (3, "caller", "no more", False),
        (3, "agent", "Ok.", False),
    ]
    assert "never heard" in turns[4].unsaid
    assert set(turns[2].timings) >= {"stt", "llm_first_token", "tts_first_audio", "turn"}
    assert turns[2].engines == {"stt": "tone-stt", "llm": "scripted-llm", "tts": "tone-tts"}
    assert turns[0].engines == {} and turns[1].engines == {}  # a phrase, a caller's words
    starts = [t.started for t in turns]
    assert all(s is not None for s in starts)
    assert starts == sorted(starts)  # type: ignore[type-var]
    assert all(t.ended is not None and t.started is not None and t.ended > t.started for t in turns)

    # Left: every frame the caller sent; right: every frame the caller heard, cut where they cut in.
    left, right = stereo_channels(tmp_path / "recordings" / str(call.recording))
    line = report.line  # type: ignore[attr-defined]
    assert left == b"".join(line.caller_audio)
    heard = b"".join(line.agent_audio)
    assert right == heard[: len(right)] and len(heard) - len(right) <= 640
    assert str(call.recording).endswith("/" + recording_name("call-1"))


def test_turns_are_stored_as_each_turn_completes_not_at_hang_up(
    tmp_path: Path, models_dir: Path
) -> None:
    seen_mid_call: list[list[str]] = []

    async def main() -> None:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["One.", "Two."]).open()
        pending = []

        def look(event: object) -> None:
            if isinstance(event, TranscriptFinal) and event.turn == 2:

                async def read() -> None:
                    rows = await kit.records.db.run(calls.turns_of, "call-1")
                    seen_mid_call.append([f"{r.turn}:{r.speaker}" for r in rows])

                pending.append(asyncio.ensure_future(read()))

        try:
            await run_wav_call(
                kit.desk().answer,
                [Speak(say("hello")), Speak(say("time")), HangUp()],
                clock=kit.clock,
                info=CallInfo(call_id="call-1", line="wav", caller="+15550100"),
                on_event=look,
            )
            for read in pending:
                await read
        finally:
            kit.close()

    run_records(main())
    # By the time the caller's second turn was transcribed, the greeting and both sides of the
    # first turn were in the database, long before the hang-up (the records see each event
    # before any observer, so the second turn's words may be there too; its reply cannot be).
    (seen,) = seen_mid_call
    assert seen[:3] == ["0:agent", "1:caller", "1:agent"]
    assert seen[3:] in ([], ["2:caller"])


def test_the_jobs_remember_the_caller_and_their_next_call_knows_and_recalls_it(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> tuple[object, list[jobs.JobRecord], int]:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["It is sunny in Paris."]).open()
        try:
            await kit.call([Speak(say("weather", "paris")), HangUp()])
            kit.job_llm.replies = [
                "The caller asked about the weather in Paris.",
                # The last is made up (the caller never said it): it is not kept.
                "- Asks about the weather in Paris\n- Wants the weather\n- Likes pizza\n- none",
            ]
            ran = await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            done = await kit.records.db.run(jobs.jobs_of, "call-1")
            kit.llm.replies = ["Hello again."]
            second = await kit.call([Speak(say("weather")), HangUp()], call_id="call-2")
            return second, done, ran
        finally:
            kit.close()

    second, done, ran = run_records(main())
    assert ran == 2
    assert [(j.kind, j.state, j.attempts) for j in done] == [
        ("summary", "done", 1),
        ("memory", "done", 1),
        ("email", "skipped", 0),
        ("sms", "skipped", 0),
    ]
    conn = connect(tmp_path / "data" / "tel3sis.db")
    memory = callers.memory_of(conn, "+15550100")
    assert set(memory.facts) == {"Asks about the weather in Paris", "Wants the weather"}
    assert memory.summaries[0][1] == "The caller asked about the weather in Paris."
    assert memory.calls == 2
    assert vectors.count_vectors(conn, "+15550100") == 3  # the summary and two facts

    # The second call's prompt: system prompt, greeting, then what the agent knows, then the turn.
    call, _ = _read(tmp_path, "call-2")
    assert "- Asks about the weather in Paris" in call.memory
    kit_llm_prompt = second.events  # type: ignore[attr-defined]
    recalled = [e for e in kit_llm_prompt if isinstance(e, MemoryRecalled)]
    assert recalled and {r.call_id for r in recalled[0].found} == {"call-1"}
    assert recalled[0].found[0].distance <= recalled[0].found[-1].distance


def test_the_prompt_has_the_callers_memory_after_the_greeting(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> list[tuple[str, str]]:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Sunny."]).open()
        try:
            await kit.call([Speak(say("weather")), HangUp()])
            kit.job_llm.replies = ["The caller wanted the weather.", "- Wants the weather"]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            kit.llm.replies = ["Sure."]
            await kit.call([Speak(say("book")), HangUp()], call_id="call-2")
            return [(m.role, m.content) for m in kit.llm.seen[-1]]
        finally:
            kit.close()

    prompt = run_records(main())
    assert [role for role, _ in prompt] == ["system", "assistant", "system", "user"]
    assert prompt[1][1] == "Hello there."
    assert "- Wants the weather" in prompt[2][1]
    assert "The caller wanted the weather." in prompt[2][1]
    assert prompt[3] == ("user", "book")


def test_a_caller_without_a_number_is_not_remembered(tmp_path: Path, models_dir: Path) -> None:
    async def main() -> list[jobs.JobRecord]:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Hi."]).open()
        try:
            await kit.call([Speak(say("hello")), HangUp()], caller="anonymous")
            kit.job_llm.replies = ["Someone said hello."]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            return await kit.records.db.run(jobs.jobs_of, "call-1")
        finally:
            kit.close()

    done = run_records(main())
    assert [(j.kind, j.state) for j in done][:2] == [("summary", "done"), ("memory", "skipped")]
    assert "unknown" in done[1].result


def test_recording_can_be_turned_off(tmp_path: Path, models_dir: Path) -> None:
    async def main() -> None:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Hi."], record=False).open()
        try:
            await kit.call([Speak(say("hello")), HangUp()])
        finally:
            kit.close()

    run_records(main())
    call, turns = _read(tmp_path, "call-1")
    assert (call.recording_state, call.recording) == ("off", None)
    assert not (tmp_path / "recordings").exists()
    assert len(turns) == 3


def test_a_process_that_died_mid_call_is_recovered_by_the_next(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In process: a Records whose owner lock is released without ending its call."""

    async def main() -> tuple[list[jobs.JobRecord], float]:
        first = await RecordsKit(tmp_path, LoopClock(), replies=["Hi."]).open()
        await first.call([Speak(say("hello")), HangUp()])
        # Make it look cut off: open again, as if the process died before the end.
        await first.records.db.run(
            lambda conn: conn.execute(
                "UPDATE calls SET ended = NULL, outcome = NULL, recording_state = 'recording'"
            )
        )
        await first.records.db.run(lambda conn: conn.execute("DELETE FROM jobs"))
        first.close()  # its lock goes, as a dead process's does
        second = await RecordsKit(tmp_path, LoopClock()).open()
        try:
            return (
                await second.records.db.run(jobs.jobs_of, "call-1"),
                (await second.records.db.run(calls.find_call, "call-1")).ended,  # type: ignore[union-attr]
            )
        finally:
            second.close()

    with caplog.at_level(logging.WARNING):
        recovered, ended = run_records(main())
    assert [j.kind for j in recovered] == ["summary", "memory", "email", "sms"]
    call, _ = _read(tmp_path, "call-1")
    assert call.outcome is not None and call.outcome.startswith("interrupted")
    assert call.recording_state == "stopped"
    assert ended is not None and ended > call.started
    assert "cut off by a restart" in caplog.text


def test_the_database_is_never_left_inconsistent_by_a_failed_write(tmp_path: Path) -> None:
    conn = connect(tmp_path / "tel3sis.db")
    with pytest.raises(apsw.ConstraintError), conn:
        callers.set_summary(conn, "no-such-call", "text", 1.0)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_broken_database_does_not_stop_the_box_answering(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> object:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Hi."]).open()
        await kit.records.db.run(lambda conn: conn.execute("DROP TABLE turns; DROP TABLE calls"))
        try:
            return await kit.call([Speak(say("hello")), HangUp()])
        finally:
            kit.close()

    with caplog.at_level(logging.ERROR):
        report = run_records(main())
    assert report.ended == "caller hung up"  # type: ignore[attr-defined]
    turns = [e for e in report.events if isinstance(e, TurnCompleted)]  # type: ignore[attr-defined]
    assert [t.reply for t in turns] == ["Hi."]
    assert "goes on without them" in caplog.text


def test_a_caller_who_goes_on_after_the_endpoint_has_one_row_from_their_first_word(
    tmp_path: Path, models_dir: Path
) -> None:
    async def main() -> object:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["Paris it is."]).open()
        kit.llm.first_token_s = 1.5  # slow: nothing is heard before the caller goes on
        try:
            return await kit.call([Speak(say("hello") + quiet(600) + say("paris")), HangUp()])
        finally:
            kit.close()

    report = run_records(main())
    finals = [e for e in report.events if isinstance(e, TranscriptFinal)]  # type: ignore[attr-defined]
    assert [e.text for e in finals] == ["hello", "hello paris"]  # written twice, one turn
    _, turns = _read(tmp_path, "call-1")
    caller = [t for t in turns if t.speaker == "caller"]
    assert [(t.turn, t.text) for t in caller] == [(1, "hello paris")]
    started, ended = caller[0].started, caller[0].ended
    assert started is not None and ended is not None
    assert ended - started > 1.3  # "hello", the pause and "paris": from the first word on
