"""What a summary says happened is the call's record, told in sentences."""

from __future__ import annotations

from appliance.memory.actions import ActionRecord
from appliance.memory.calls import TurnRecord
from appliance.memory.happened import what_happened


def _turn(turn: int, speaker: str, text: str) -> TurnRecord:
    return TurnRecord(
        idx=0,
        turn=turn,
        speaker=speaker,  # type: ignore[arg-type]
        text=text,
        started=None,
        ended=None,
        interrupted=False,
        unsaid="",
    )


def _tool(name: str, ok: bool | None, result: str = "") -> ActionRecord:
    return ActionRecord(turn=1, kind="tool", name=name, arguments="{}", ok=ok, result=result)


PROMISED = [
    _turn(0, "agent", "Hello, this is Tess."),
    _turn(1, "caller", "Can you text me the hours?"),
    _turn(1, "agent", "Sure, I'll text you the hours right away."),
]


def test_a_promise_to_text_is_not_a_text_sent() -> None:
    told = what_happened(PROMISED, [], "caller hung up").sentences()
    assert told == ["No text or email was sent during the call."]
    assert what_happened(PROMISED, [], "time limit").sentences()[-1] == (
        "The call ended: time limit."
    )


def test_a_message_is_said_to_be_sent_only_when_its_tool_ran() -> None:
    failed = what_happened(PROMISED, [_tool("send_sms", ok=False)], "caller hung up")
    assert failed.sentences()[:2] == [
        "Tools run: send_sms (failed).",
        "No text or email was sent during the call.",
    ]
    sent = what_happened(PROMISED, [_tool("send_sms", ok=True, result="sent SM123")], None)
    assert sent.sentences() == [
        "Tools run: send_sms (ok).",
        "Sent during the call: send_sms (sent SM123).",
    ]


def test_only_a_tool_named_for_a_message_counts_as_one() -> None:
    for name in ("send_sms", "email_summary", "text_caller", "send_message", "sms"):
        assert what_happened(PROMISED, [_tool(name, ok=True)], None).messages_sent, name
    for name in ("get_context", "get_weather", "mailbox_hours"):
        assert not what_happened(PROMISED, [_tool(name, ok=True)], None).messages_sent, name


def test_an_agent_that_never_answered_is_said_to_have_never_answered() -> None:
    turns = [
        _turn(0, "agent", "Hello."),
        _turn(1, "caller", "Hello?"),
        _turn(1, "agent", ""),
        _turn(2, "caller", "Is anyone there?"),
    ]
    told = what_happened(turns, [], "caller hung up").sentences()
    assert told[0] == "The agent never answered: the caller heard no reply to what they said."
    half = [*turns[:2], _turn(1, "agent", "Yes, hello."), turns[3]]
    assert what_happened(half, [], None).sentences() == [
        "The agent did not answer 1 of the caller's 2 turns."
    ]


def test_tools_transfers_and_the_agent_hanging_up_are_told_as_recorded() -> None:
    actions = [
        _tool("get_weather", ok=True),
        _tool("check_hours", ok=None),
        ActionRecord(turn=0, kind="transfer", name="+15550111", arguments="", ok=None, result=""),
        ActionRecord(turn=0, kind="hangup", name="goodbye", arguments="", ok=None, result=""),
    ]
    weather = [_turn(1, "caller", "What is the weather?"), _turn(1, "agent", "It is sunny.")]
    told = what_happened(weather, actions, "goodbye")
    assert told.sentences() == [
        "Tools run: get_weather (ok), check_hours (did not finish).",
        "A transfer to +15550111 was tried.",
        "The agent ended the call (goodbye).",
    ]
    through = what_happened(weather, actions[2:3], "transferred").sentences()
    assert "The call was transferred to +15550111." in through


def test_a_message_tool_that_says_it_sent_nothing_is_no_message_sent() -> None:
    for result in (
        "Not sent: the caller's number is withheld, so there is nowhere to text it.",
        "Not sent yet: the transcript of this call will be texted to the caller's number, "
        "ending in 0 1 2 3, after the call ends; nothing is sent during it.",
    ):
        happened = what_happened(PROMISED, [_tool("text_the_caller", ok=True, result=result)], None)
        assert not happened.messages_sent
        assert happened.sentences()[-1] == "No text or email was sent during the call."
