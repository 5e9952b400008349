"""A tool with a side effect runs only after its read-back and the caller's yes, in code.

The model asks for the tool; the caller hears the read-back (said by the code, whatever the
model wrote); the tool runs in the caller's next turn only if those words say yes (or they
press 1), with the arguments that were read back. A no, or anything else, drops it, and the
drop is in the safety audit's events. Nothing the model does can make it run without the yes.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from appliance.conversation.confirm import answer_to_readback
from appliance.conversation.events import (
    SafetyChecked,
    ToolFinished,
    ToolReadBack,
    TurnCompleted,
)
from appliance.conversation.ports import CallInfo, TextDelta
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import Tool, ToolContext
from appliance.telephony.wavfile import HangUp, Speak
from appliance.tools.text_caller import text_the_caller
from tests.support.calls import play_call
from tests.support.fakes import say, tool_call
from tests.support.hand_clock import HandClock

READBACK = "Shall I send the parcel to Paris?"


class _Where(BaseModel):
    city: str


def _sender(sent: list[str]) -> Tool:
    async def run(arguments: BaseModel, _: ToolContext) -> str:
        assert isinstance(arguments, _Where)
        sent.append(arguments.city)
        return f"Sent to {arguments.city}."

    def readback(arguments: BaseModel, _: ToolContext) -> str:
        assert isinstance(arguments, _Where)
        return f"Shall I send the parcel to {arguments.city}?"

    return Tool(
        name="send_parcel", description="Send", arguments=_Where, run=run, readback=readback
    )


ASK = [tool_call("send_parcel", '{"city": "Paris"}')]


def test_the_caller_hears_the_readback_and_only_their_yes_runs_the_tool() -> None:
    sent: list[str] = []
    call = play_call(
        [Speak(say("book", "paris")), Speak(say("yes")), HangUp()],
        replies=[[TextDelta("Sure thing."), *ASK], "Done, it is on its way."],
        tools=[_sender(sent)],
    )
    replies = [e.reply for e in call.events(TurnCompleted)]
    assert sent == ["Paris"]
    assert replies[0].endswith(READBACK)  # said by the code, after what the model wrote
    assert replies[1] == "Done, it is on its way."
    (finished,) = call.events(ToolFinished)
    assert (finished.name, finished.ok, finished.turn) == ("send_parcel", True, 2)
    (readback,) = call.events(ToolReadBack)  # what the caller heard, for the records and checks
    assert (readback.name, readback.text, readback.turn) == ("send_parcel", READBACK, 1)
    # The model was asked once per turn: the yes ran the tool without asking it to call again.
    assert call.fakes.llm.seen[-1][-1].content == "Sent to Paris."


@pytest.mark.parametrize("answer", [("no",), ("weather", "paris"), ("yes", "no")])
def test_anything_but_a_yes_drops_it_and_says_so_in_the_audit(answer: tuple[str, ...]) -> None:
    sent: list[str] = []
    call = play_call(
        [Speak(say("book", "paris")), Speak(say(*answer)), HangUp()],
        replies=[ASK, "All right, I won't."],
        tools=[_sender(sent)],
    )
    assert sent == []
    blocked = [e for e in call.events(SafetyChecked) if e.layer == "tool"]
    assert len(blocked) == 1 and "did not say yes" in blocked[0].category
    assert "Not done: the caller did not say yes" in call.fakes.llm.seen[-1][-1].content


def test_the_model_calling_it_again_and_again_only_reads_it_back_again() -> None:
    sent: list[str] = []
    call = play_call(
        [Speak(say("book", "paris")), Speak(say("book", "paris")), HangUp()],
        # The model insists, in both turns; the second turn's words are no yes.
        replies=[ASK, ASK, ASK],
        tools=[_sender(sent)],
    )
    assert sent == []
    assert [e.reply for e in call.events(TurnCompleted)] == [READBACK, READBACK]


def test_answers_to_a_readback() -> None:
    assert answer_to_readback("Yes please") == "yes"
    assert answer_to_readback("yeah go ahead") == "yes"
    assert answer_to_readback("(pressed 1)") == "yes"
    assert answer_to_readback("(pressed 2)") == "no"
    assert answer_to_readback("No, don't.") == "no"
    assert answer_to_readback("Yes... actually no, wait") == "no"
    assert answer_to_readback("What time do you close?") is None
    assert answer_to_readback("Yes, cancel it.") == "yes"  # to "Shall I cancel it?"
    assert answer_to_readback("Cancel that.") == "no"
    assert answer_to_readback("Stop, I don't want it") == "no"


async def test_texting_the_caller_reads_back_their_number_and_sends_only_the_profiles_words() -> (
    None
):
    profile = BusinessProfile.model_validate(
        {"name": "Bright Smile", "timezone": "UTC", "address": "12 Harbour Road, Leith"}
    )
    texts: list[tuple[str, str]] = []

    class Texter:
        async def send_sms(self, to: str, body: str) -> str:
            texts.append((to, body))
            return "SM123"

    tool = text_the_caller(profile, Texter(), clock=HandClock())
    assert tool is not None and tool.readback is not None
    context = ToolContext(call=CallInfo(call_id="c", line="sip", caller="+15550100123"))
    address = tool.arguments.model_validate({"what": "address"})
    assert await tool.readback(address, context) == (
        "I'll text our address to the number you're calling from, ending in 0 1 2 3. "
        "Shall I send it?"
    )
    assert await tool.run(address, context) == "Sent: our address was texted to the caller (SM123)."
    assert texts == [("+15550100123", "Bright Smile: 12 Harbour Road, Leith")]
    # The profile has no phone number: it is not a choice the model is offered.
    with pytest.raises(ValidationError):
        tool.arguments.model_validate({"what": "phone number"})
    withheld = ToolContext(call=CallInfo(call_id="c", line="sip", caller="anonymous"))
    assert await tool.readback(address, withheld) is None
    assert "withheld" in await tool.run(address, withheld)
    assert len(texts) == 1
