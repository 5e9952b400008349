"""Tools that cannot be undone run only on the caller's own words (`appliance.tools.asked`)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.conversation.ports import CallInfo
from appliance.conversation.tools import ToolContext
from appliance.tools.asked import FAREWELL, FORGET, caller_asked
from appliance.tools.call import end_call


def _context(*said: str) -> ToolContext:
    return ToolContext(
        call=CallInfo(call_id="c", line="sip", caller="+15551230001"),
        caller_said=dict(enumerate(said, start=1)),
    )


@pytest.mark.parametrize(
    ("said", "asked"),
    [
        ("Please forget me.", True),
        ("Can you delete my details?", True),
        ("Stop remembering what I say.", True),
        ("I don't want you to keep anything, don't remember me.", True),
        ("Can I change my booking for Friday?", False),
        ("Hello again.", False),
        ("What do you remember about me?", False),
    ],
)
def test_asking_to_be_forgotten_is_told_from_other_requests(said: str, asked: bool) -> None:
    assert caller_asked(_context(said), FORGET) is asked


@pytest.mark.parametrize(
    ("said", "asked"),
    [
        ("Goodbye.", True),
        ("OK, thanks, bye.", True),
        ("No, that's all.", True),
        ("No, that's everything, I'm all set.", True),
        ("Nothing more, cheers.", True),
        ("Can I change my booking for Friday?", False),
        ("What time do you open?", False),
    ],
)
def test_closing_words_are_told_from_requests(said: str, asked: bool) -> None:
    assert caller_asked(_context(said), FAREWELL) is asked


def test_only_the_last_turns_count() -> None:
    context = _context("Forget me, please.", "Actually, what are your hours?")
    assert not caller_asked(context, FORGET)
    assert caller_asked(context, FORGET, turns=2)
    assert not caller_asked(_context(), FORGET, turns=2)


def test_end_call_hangs_up_only_after_the_caller_closes() -> None:
    asking = _context("Can I change my booking for Friday?")
    result = asyncio.run(end_call.run(end_call.arguments(), asking))
    assert not asking.hang_up_after_reply
    assert result.startswith("Not done: the caller has not said goodbye")

    leaving = _context("What time do you open?", "Great, thank you, goodbye.")
    asyncio.run(end_call.run(end_call.arguments(), leaving))
    assert leaving.hang_up_after_reply
