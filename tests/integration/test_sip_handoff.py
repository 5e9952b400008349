"""A SIP caller asks for a person by pressing 0 (sipp over loopback, scripted fake engines):
the session runs the hand-off tool, says so, and the line sends a blind REFER; when nobody
answers (the transferee's NOTIFY says 480) the call goes on and the caller is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.conversation.events import (
    CallEnded,
    DtmfReceived,
    PhraseSpoken,
    ToolFinished,
    Transfer,
    TransferFailed,
)
from appliance.conversation.handoff import not_answering, put_through
from appliance.telephony.sip import SipConfig
from appliance.tools.transfer import transfer_tool
from tests.support.sip import SIP_FIXTURES, fake_listener, run_sipp

pytestmark = pytest.mark.timeout(120)

OFFICE = "+15550100"
WHO = "a member of staff"


async def test_pressing_0_puts_the_caller_through_with_a_refer(tmp_path: Path) -> None:
    tools = [transfer_tool([], OFFICE)]
    async with fake_listener(tools=tools, config=SipConfig()) as calls:
        run = await run_sipp(
            calls.port,
            "-m",
            "1",
            scenario=str(SIP_FIXTURES / "dtmf0_refer.xml"),
            work_dir=tmp_path,
        )
    assert run.returncode == 0, run.screen
    assert [(e.digit, e.method) for e in calls.all_events(DtmfReceived)] == [("0", "sip-info")]
    (ran,) = calls.all_events(ToolFinished)
    assert ran.name == "transfer_to_person" and ran.ok
    (transfer,) = calls.all_events(Transfer)
    assert transfer.target == OFFICE
    # What the person is told: who called, and that they have not said anything yet.
    assert "have not said anything" in transfer.summary
    assert f"Refer-To: <sip:{OFFICE}@127.0.0.1>" in run.messages or (
        f"Refer-To: sip:{OFFICE}@127.0.0.1" in run.messages
    )
    assert run.received("BYE") == 1  # once the transferee reported the new call answered
    phrases = [p.text for p in calls.all_events(PhraseSpoken)]
    assert put_through(WHO) in phrases
    (ended,) = calls.all_events(CallEnded)
    assert ended.reason == "transferred"


async def test_when_nobody_answers_the_call_goes_on_and_the_caller_is_told(
    tmp_path: Path,
) -> None:
    tools = [transfer_tool([], OFFICE)]
    async with fake_listener(tools=tools) as calls:
        run = await run_sipp(
            calls.port,
            "-m",
            "1",
            scenario=str(SIP_FIXTURES / "dtmf0_refer_unanswered.xml"),
            work_dir=tmp_path,
        )
    assert run.returncode == 0, run.screen
    assert run.received("BYE") == 0  # the agent kept the caller
    (failed,) = calls.all_events(TransferFailed)
    assert failed.target == OFFICE and "refused or not answered" in failed.reason
    phrases = [p.text for p in calls.all_events(PhraseSpoken)]
    assert not_answering(WHO) in phrases
    (ended,) = calls.all_events(CallEnded)
    assert ended.reason == "caller hung up"
