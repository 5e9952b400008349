"""Every safety decision on a call is kept with the call (the real records, scripted engines,
virtual time), listed by `appliance safety audit`, and goes when the call's records do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.memory import audit
from appliance.memory.cli import list_safety_decisions
from appliance.memory.db import connect
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.records import RecordsKit, run_records
from tests.unit.test_safety_guard import WordScreen


def _screened_call(tmp_path: Path) -> Path:
    async def main() -> None:
        kit = RecordsKit(tmp_path, LoopClock(), replies=["It is sunny."], screen=WordScreen())
        await kit.open()
        try:
            await kit.call([Speak(say("bomb", "help")), Speak(say("weather")), HangUp()])
        finally:
            kit.close()

    run_records(main())
    return tmp_path / "data" / "tel3sis.db"


def test_each_decision_is_kept_in_order_with_its_scores(tmp_path: Path) -> None:
    database = _screened_call(tmp_path)
    conn = connect(database)
    rows = audit.decisions(conn, call_id="call-1")
    assert [(d.turn, d.layer, d.action, d.text) for d in rows] == [
        (1, "caller", "refused", "bomb help"),
        (2, "caller", "allowed", "weather"),
        (2, "agent", "allowed", "It is sunny."),
    ]
    refused = rows[0]
    assert (refused.score, refused.threshold, refused.category) == (0.9, 0.5, "weapons")
    assert [d.action for d in audit.decisions(conn, stopped_only=True)] == ["refused"]


def test_the_audit_command_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = _screened_call(tmp_path)
    assert list_safety_decisions(database, stopped_only=True) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "refused" in out[0] and "[weapons]" in out[0]
    assert "bomb help" in out[0]
    assert list_safety_decisions(database, call_id="call", as_json=True) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["action"] for row in listed] == ["refused", "allowed", "allowed"]
    assert list_safety_decisions(database, call_id="nope") == 1


def test_with_no_database_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert list_safety_decisions(tmp_path / "none.db") == 0
    assert "no calls recorded yet" in capsys.readouterr().err
