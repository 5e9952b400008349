"""The `transfer_to_person` tool: who it picks, what it tells the model, and the summary it
texts and emails (to local fakes of Twilio's Messages and SendGrid that speak their wire)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.profile import Person
from appliance.conversation.tools import ToolArgumentsError, ToolContext, ToolRegistry
from appliance.tools.email import SendGridMailer
from appliance.tools.sms import TwilioTexter
from appliance.tools.transfer import call_summary, transfer_tool
from tests.support.fake_services import TWILIO_500, sendgrid, twilio

CALL = CallInfo(call_id="c1", line="sip", caller="+15550123")
OFFICE = "+15550100"


SAM = Person(name="Sam Jones", role="Owner", number="+15550177")
DESK = Person(name="Front desk", role="Reception", sip="sip:desk@pbx.example.com")


def _ask(registry: ToolRegistry, arguments: str, context: ToolContext) -> tuple[bool, str]:
    call = ToolCall(id="1", name="transfer_to_person", arguments=arguments)
    return asyncio.run(registry.run(call, registry.parse(call), context))


def _context(*said: str) -> ToolContext:
    return ToolContext(call=CALL, caller_said=dict(enumerate(said, start=1)))


def test_it_picks_the_person_by_name_or_role_and_the_default_for_anyone() -> None:
    registry = ToolRegistry([transfer_tool([SAM, DESK], OFFICE)])
    for asked, target, who in [
        ("Sam", SAM.target, "Sam Jones"),
        ("the owner", SAM.target, "Sam Jones"),
        ("reception please", DESK.target, "Front desk"),
        ("", OFFICE, "a member of staff"),
        ("a real person", OFFICE, "a member of staff"),
    ]:
        context = _context("I want to speak to someone")
        ok, result = _ask(registry, f'{{"who": "{asked}"}}', context)
        assert ok, result
        assert context.transfer_to is not None, asked
        assert (context.transfer_to.target, context.transfer_to.who) == (target, who)
        assert f"I'll put you through to {who}." in result


def test_an_unknown_person_gets_the_model_a_list_of_who_can_be_reached() -> None:
    registry = ToolRegistry([transfer_tool([SAM, DESK], OFFICE)])
    context = _context("Can I talk to Bob?")
    ok, result = _ask(registry, '{"who": "Bob"}', context)
    assert ok
    assert context.transfer_to is None  # nobody is put through
    assert "nobody called 'Bob'" in result
    assert "Sam Jones (Owner)" in result and "Front desk (Reception)" in result


def test_without_anyone_to_reach_it_says_to_take_a_message() -> None:
    registry = ToolRegistry([transfer_tool([], None)])
    context = _context("a person please")
    _, result = _ask(registry, "{}", context)
    assert context.transfer_to is None
    assert "take a message" in result


def test_without_an_escalation_number_the_first_person_is_the_default() -> None:
    registry = ToolRegistry([transfer_tool([DESK, SAM], None)])
    context = _context()
    _ask(registry, "{}", context)
    assert context.transfer_to is not None and context.transfer_to.target == DESK.target


def test_a_bad_argument_is_a_clear_error_and_nothing_happens() -> None:
    registry = ToolRegistry([transfer_tool([SAM], OFFICE)])
    call = ToolCall(id="1", name="transfer_to_person", arguments='{"who": 7}')
    with pytest.raises(ToolArgumentsError, match="who"):
        registry.parse(call)


def test_the_summary_quotes_only_the_callers_words() -> None:
    summary = call_summary(CALL, ["I'd like to book a table.", "Can I speak to Sam?"], "Sam")
    assert summary.written == (
        'Call for Sam from +15550123. They said: "I\'d like to book a table. Can I speak to Sam?"'
    )
    assert summary.spoken.startswith("A call for Sam from 1 5 5 5 0 1 2 3.")
    long = call_summary(CALL, ["word " * 200, "the end"], "Sam")
    assert len(long.written) < 480 and long.written.endswith('the end"')
    assert "... " in long.written
    quiet = call_summary(CallInfo(call_id="c", line="sip", caller=""), [], "Sam")
    assert quiet.written == "Call for Sam from an unknown number. They have not said anything yet."


def test_the_summary_is_texted_to_the_person_and_emailed() -> None:
    with twilio("ACx", "tok") as texts, sendgrid("key") as mails:
        texter = TwilioTexter(
            account_sid="ACx", auth_token="tok", sender="+15550000", base_url=texts.url
        )
        mailer = SendGridMailer(api_key="key", sender="box@example.com", base_url=mails.url)
        tool = transfer_tool(
            [SAM, DESK], OFFICE, texter=texter, mailer=mailer, email_to="owner@example.com"
        )
        registry = ToolRegistry([tool])
        _, result = _ask(registry, '{"who": "Sam"}', _context("I need a refund"))
        _, by_sip = _ask(registry, '{"who": "desk"}', _context("Hello"))
    (sms,) = [seen.form() for seen in texts.requests]
    assert sms["To"] == SAM.target
    assert sms["Body"] == 'Call for Sam Jones from +15550123. They said: "I need a refund"'
    assert "texted to Sam Jones and emailed" in result
    # A SIP person gets no text (no number); the operator's email still goes.
    assert "emailed" in by_sip and "texted" not in by_sip
    mails_sent = [seen.json() for seen in mails.requests]
    assert [m["subject"] for m in mails_sent] == [  # type: ignore[index]
        "Call transferred to Sam Jones",
        "Call transferred to Front desk",
    ]


def test_a_text_that_fails_is_reported_and_the_transfer_goes_on() -> None:
    with twilio("ACx", "tok") as texts:
        texts.script.append(TWILIO_500)
        texter = TwilioTexter(
            account_sid="ACx", auth_token="tok", sender="+15550000", base_url=texts.url
        )
        registry = ToolRegistry([transfer_tool([SAM], OFFICE, texter=texter)])
        context = _context("hi")
        ok, result = _ask(registry, '{"who": "Sam"}', context)
    assert ok and "texted" not in result
    assert context.transfer_to is not None and context.transfer_to.target == SAM.target


def test_the_business_profiles_people_can_be_reached() -> None:
    people = (
        Person(name="Sam Jones", role="Owner", number="+1 555 0177"),
        Person(name="Front desk", role="Reception", sip="sip:desk@pbx.example.com"),
    )
    registry = ToolRegistry([transfer_tool(people, None)])
    context = _context("Is reception there?")
    _ask(registry, '{"who": "reception"}', context)
    assert context.transfer_to is not None
    assert context.transfer_to.target == "sip:desk@pbx.example.com"
