"""What the agent did reaches the call's record from its events, over a real database: tools
with their arguments and results, a tool the call ended during, transfers, hanging up, and how
sure speech-to-text was of each caller turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.conversation.events import (
    AgentHungUp,
    CallStarted,
    ToolCalled,
    ToolFinished,
    TranscriptFinal,
    Transfer,
)
from appliance.conversation.ports import CallInfo
from appliance.memory import actions, calls
from appliance.memory.actions import ActionRecord
from appliance.memory.db import Database
from appliance.memory.session import InProcessState
from appliance.memory.transcript import TranscriptSink

INFO = CallInfo(call_id="call-1", line="sip", caller="+15550100")


def test_tools_transfers_hang_ups_and_confidence_are_recorded_as_they_happen(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[list[ActionRecord], list[calls.TurnRecord]]:
        db = Database(tmp_path / "tel3sis.db")
        await db.open()
        await db.run(calls.open_call, INFO, started=0.0, owner="test", memory="")
        sink = TranscriptSink(db, "call-1", state=InProcessState())
        writer = asyncio.create_task(sink.run())
        for event in (
            CallStarted(info=INFO, at=0.0),
            TranscriptFinal(turn=1, text="What is the weather?", confidence=0.81, engine="w"),
            ToolCalled(turn=1, name="get_weather", arguments='{"city": "Paris"}'),
            ToolFinished(turn=1, name="get_weather", ok=True, result="Sunny."),
            TranscriptFinal(turn=2, text="Text it to me.", confidence=0.44, engine="w"),
            ToolCalled(turn=2, name="send_sms", arguments="{}"),
            ToolFinished(turn=2, name="send_sms", ok=False, result="error: refused"),
            ToolCalled(turn=2, name="send_sms", arguments='{"again": true}'),  # never finished
            Transfer(target="+15550111", summary="Wants the weather by text."),
            AgentHungUp(reason="transferred"),
        ):
            sink(event)
        sink.close()
        await writer
        done = await db.run(actions.actions_of, "call-1")
        turns = await db.run(calls.turns_of, "call-1")
        await db.aclose()
        return done, turns

    done, turns = asyncio.run(main())
    assert done == [
        ActionRecord(1, "tool", "get_weather", '{"city": "Paris"}', True, "Sunny."),
        ActionRecord(2, "tool", "send_sms", "{}", False, "error: refused"),
        ActionRecord(2, "tool", "send_sms", '{"again": true}', None, ""),
        ActionRecord(0, "transfer", "+15550111", "", None, ""),
        ActionRecord(0, "hangup", "transferred", "", None, ""),
    ]
    assert [(t.turn, t.text, t.confidence) for t in turns] == [
        (1, "What is the weather?", 0.81),
        (2, "Text it to me.", 0.44),
    ]
