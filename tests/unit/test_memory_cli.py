"""`appliance calls list|show|export` over a recorded call, and retention of old records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.clock import LoopClock
from appliance.memory import calls, jobs
from appliance.memory.db import connect
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.records import RecordsKit, run_records


@pytest.fixture
def recorded(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with one recorded, summarized call in it; the settings point at it."""

    async def record() -> None:
        kit = await RecordsKit(tmp_path, LoopClock(), replies=["It is sunny."]).open()
        try:
            await kit.call([Speak(say("hello", "weather")), HangUp()])
            kit.job_llm.replies = ["The caller asked about the weather.", "- none"]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
        finally:
            kit.close()

    run_records(record())
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECORDINGS_DIR", str(tmp_path / "recordings"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_calls_list_shows_the_call(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "list"]) == 0
    text = capsys.readouterr().out
    assert "call-1" in text and "+15550100" in text and "caller hung up" in text

    assert main(["calls", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == "call-1" and listed["caller_turns"] == 1
    assert listed["recording_state"] == "complete"


def test_calls_show_has_turns_timings_recording_and_jobs(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls", "show", "call-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(t["speaker"], t["text"]) for t in shown["turns"]] == [
        ("agent", "Hello there."),
        ("caller", "hello weather"),
        ("agent", "It is sunny."),
    ]
    assert shown["turns"][2]["timings_ms"]["turn"] > 0
    assert Path(shown["recording_path"]).is_file()
    assert shown["summary"] == "The caller asked about the weather."
    assert {j["kind"]: j["state"] for j in shown["jobs"]} == {
        "summary": "done",
        "memory": "done",
        "email": "skipped",
        "sms": "skipped",
    }

    assert main(["calls", "show", "call"]) == 0  # the start of an id is enough
    text = capsys.readouterr().out
    assert "hello weather" in text and "ms:" in text and "summary" in text

    assert main(["calls", "show", "nope"]) == 1
    assert "no call 'nope'" in capsys.readouterr().err


def test_calls_export_puts_recording_transcript_and_json_in_one_folder(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = recorded / "exported"
    assert main(["calls", "export", "call-1", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    record = json.loads((out / "call.json").read_text())
    assert (out / "recording.wav").read_bytes() == Path(record["recording_path"]).read_bytes()
    transcript = (out / "transcript.txt").read_text()
    assert "Caller: hello weather" in transcript and "Agent: It is sunny." in transcript


def test_listing_with_no_database_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path))
    assert main(["calls", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not (tmp_path / "tel3sis.db").exists()


def test_retention_removes_old_recordings_and_transcripts_but_never_a_live_call(
    tmp_path: Path, models_dir: Path
) -> None:
    clock_offset = {"days": 0.0}

    class _Clock(LoopClock):
        def wall(self) -> float:
            return super().wall() + clock_offset["days"] * 86400

    async def scenario() -> tuple[list[jobs.JobRecord], str]:
        kit = await RecordsKit(tmp_path, _Clock(), replies=["Hi.", "Hi."], retention_days=30).open()
        try:
            await kit.call([Speak(say("hello")), HangUp()], call_id="old")
            # A call that is still going (another process's, say) and as old.
            await kit.records.db.run(
                lambda conn: conn.execute(
                    "INSERT INTO calls (id, line, line_call_id, caller, started, owner) "
                    "SELECT 'live', line, 'live', caller, started, owner FROM calls"
                )
            )
            clock_offset["days"] = 29
            await kit.call([Speak(say("hello")), HangUp()], call_id="recent")
            clock_offset["days"] = 31
            await kit.records.schedule_retention()
            await kit.records.schedule_retention()  # once is enough: no second job
            kit.job_llm.replies = ["x", "- none", "y", "- none"]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            done = await kit.records.db.run(jobs.jobs_of, None)
            return [j for j in done if j.kind == "retention"], str(kit.records.recordings)
        finally:
            kit.close()

    (retention,), recordings = run_records(scenario())
    assert retention.state == "done"
    assert retention.result.startswith("1 calls older than 30 days")
    conn = connect(tmp_path / "data" / "tel3sis.db")
    old = calls.find_call(conn, "old")
    recent = calls.find_call(conn, "recent")
    assert old is not None and recent is not None
    assert (old.recording_state, old.recording) == ("removed", None)
    assert calls.turns_of(conn, "old") == []
    assert recent.recording_state == "complete" and len(calls.turns_of(conn, "recent")) == 3
    assert (Path(recordings) / str(recent.recording)).is_file()
    assert not list(Path(recordings).rglob("old.wav"))
    live = calls.find_call(conn, "live")
    assert live is not None and live.ended is None and live.recording_state == "off"
