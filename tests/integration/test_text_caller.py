"""Texts to the caller through real parts: the appointment from a real CalDAV server (Radicale on
loopback), the transcript from the call's records by the post-call job, and both through Twilio's
Messages API as a fake on loopback speaking its wire format.

It is Tuesday 8 December 2026, 10 AM in New York.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import apsw
import caldav
import pytest
from pydantic import SecretStr

from appliance.app.records import build_records
from appliance.bookings import CalDavCalendar, booking_tools
from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import ToolContext, ToolRegistry
from appliance.memory import actions, calls, jobs
from appliance.memory.postcall import PostCall
from appliance.observability.metrics import Metrics
from appliance.settings import PathSettings, Settings, TwilioSettings
from appliance.telephony.wavfile import HangUp, Speak
from appliance.tools.sms import TwilioTexter
from appliance.tools.text_caller import TEXT_TOOL, text_the_caller
from appliance.web.history import CallHistory
from tests.support.fake_services import Seen, twilio
from tests.support.fakes import ScriptedLanguageModel, say, tool_call
from tests.support.hand_clock import HandClock
from tests.support.radicale import PASSWORD, USER, Radicale
from tests.support.records import ManualClock, RecordsKit, run_records

ZONE = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 12, 8, 10, tzinfo=ZONE)
ANN = "+15550100123"
BOB = "+15550100456"
SID, TOKEN, SENDER = "AC0123456789abcdef0123456789abcdef", "twilio-token", "+15550100999"
PROFILE = BusinessProfile.model_validate(
    {
        "name": "Bright Cuts",
        "timezone": "America/New_York",
        "address": "12 Harbour Road, Leith",
        "hours": dict.fromkeys(("monday", "tuesday", "wednesday", "thursday"), "09:00-17:00"),
        "services": [{"name": "Haircut", "minutes": 30}, {"name": "Colour", "minutes": 90}],
    }
)


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    server = Radicale(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _texter(url: str) -> TwilioTexter:
    return TwilioTexter(account_sid=SID, auth_token=TOKEN, sender=SENDER, base_url=url)


def _context(caller: str) -> ToolContext:
    return ToolContext(
        call=CallInfo(call_id=f"call-{caller}", line="sip", caller=caller, vouched=True)
    )


async def _confirmed(registry: ToolRegistry, context: ToolContext, name: str, **args: str) -> str:
    """The tool read back, then run as on the caller's yes: what the caller heard."""
    call = ToolCall(id="1", name=name, arguments=json.dumps(args))
    said = await registry.readback(call, registry.parse(call), context)
    assert said is not None
    ok, result = await registry.run(call, registry.parse(call), context)
    assert ok, result
    return said


def _move_at_the_desk(calendar: caldav.Calendar, caller: str, start: dt.datetime) -> None:
    """The business moves the caller's appointment in its own calendar app, not by a call."""
    for event in calendar.events():
        part = event.icalendar_component
        if str(part.get("X-TEL3SIS-CALLER", "")) != caller:
            continue
        length = part["DTEND"].dt - part["DTSTART"].dt
        for name, at in (("DTSTART", start), ("DTEND", start + length)):
            del part[name]
            part.add(name, at.astimezone(dt.UTC))
        event.save()


async def test_the_confirmation_text_holds_the_appointment_as_the_calendar_has_it(
    radicale: Radicale,
) -> None:
    calendar = radicale.calendar()
    dav = CalDavCalendar(radicale.url, username=USER, password=PASSWORD)
    clock = HandClock(NOW.timestamp())
    with twilio(SID, TOKEN) as sms:
        texting = text_the_caller(PROFILE, _texter(sms.url), clock=clock, bookings=dav)
        assert texting is not None
        registry = ToolRegistry([*booking_tools(PROFILE, dav, clock=clock), texting])
        for who, time in ((ANN, "3 pm"), (BOB, "4 pm")):
            args = {"service": "haircut", "day": "wednesday", "time": time}
            await _confirmed(registry, _context(who), "book_appointment", **args)
        await asyncio.to_thread(
            _move_at_the_desk, calendar, ANN, dt.datetime(2026, 12, 10, 11, 30, tzinfo=ZONE)
        )
        ann = _context(ANN)
        asked = ToolCall(id="2", name=TEXT_TOOL, arguments='{"what": "my appointment"}')
        heard = await registry.readback(asked, registry.parse(asked), ann)
        assert sms.requests == []  # read back, not sent
        ok, result = await registry.run(asked, registry.parse(asked), ann)
    assert ok and result.startswith("Sent: the caller's appointment details were texted")
    assert heard == (
        "I'll text the details of your haircut on Thursday the 10th at 11:30 AM to the number "
        "you're calling from, ending in 0 1 2 3. Shall I send it?"
    )
    (sent,) = sms.requests
    text = sent.form()
    assert (text["To"], text["From"]) == (ANN, SENDER)
    assert text["Body"] == (
        "Bright Cuts: your appointment\nHaircut, Thursday 10 December 2026 at 11:30 AM\n"
        "12 Harbour Road, Leith"
    )


def _call_asking_for(root: Path, url: str, what: str, answer: str, *more: str) -> None:
    """A call in virtual time on which the caller asks for `what` (then each of `more`) by text
    and answers each read-back with `answer`; the jobs it queues run later, in real time (HTTP)."""

    async def main() -> None:
        texting = text_the_caller(PROFILE, _texter(url), clock=HandClock(), after_call=True)
        assert texting is not None
        kit = RecordsKit(root, LoopClock(), remember=False, texter=_texter(url))
        kit = await kit.replace(tools=ToolRegistry([texting])).open()
        asked = [[tool_call(TEXT_TOOL, json.dumps({"what": w}))] for w in (what, *more)]
        answers = [Speak(say(answer)) for _ in asked]
        try:
            kit.llm.replies = [*asked, "It will come once we hang up."]
            await kit.call([Speak(say("help", "me")), *answers, HangUp()], caller=ANN)
        finally:
            kit.close()

    run_records(main())


def _jobs_run(root: Path, url: str, summary: str) -> dict[str, jobs.JobRecord]:
    """The call's post-call jobs, run until none is left, as the status page shows them; by
    kind."""

    async def main() -> dict[str, jobs.JobRecord]:
        kit = await RecordsKit(root, ManualClock(), remember=False, texter=_texter(url)).open()
        try:
            kit.job_llm.replies = [summary]
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            shown = await CallHistory(kit.records.db).detail("call-1")
            assert shown is not None
            return {job.kind: job for job in shown.jobs}
        finally:
            kit.close()

    return asyncio.run(main())


def _to_the_caller(requests: list[Seen]) -> dict[str, str]:
    (sent,) = requests
    text = sent.form()
    assert (text["To"], text["From"]) == (ANN, SENDER)
    return text


def test_the_transcript_asked_for_is_texted_to_the_caller_after_the_call(tmp_path: Path) -> None:
    with twilio(SID, TOKEN) as sms:
        _call_asking_for(tmp_path, sms.url, "the transcript", "yes")
        assert sms.requests == []  # nothing during the call
        done = _jobs_run(tmp_path, sms.url, "The caller asked for the call's transcript.")
    body = _to_the_caller(sms.requests)["Body"]
    assert body.startswith("Testing: your call on ")
    assert "Caller: help me\nAgent: I'll text the transcript of this call" in body
    assert "Caller: yes\nAgent: It will come once we hang up." in body
    assert done["caller_text"].state == "done"
    assert done["caller_text"].result.startswith(f"the transcript texted to the caller, {ANN} (SM")
    assert done["sms"].state == "skipped"  # the operator's text is another job, not set up here


def test_a_summary_asked_for_is_the_truthful_summary(tmp_path: Path) -> None:
    with twilio(SID, TOKEN) as sms:
        _call_asking_for(tmp_path, sms.url, "a summary", "yes")
        done = _jobs_run(tmp_path, sms.url, "The caller asked for help.")
    body = _to_the_caller(sms.requests)["Body"]
    assert "\nSummary: The caller asked for help. " in body
    # What the agent did is told from the call's record, not by the model: the text was not
    # sent during the call (it is this one, sent after it).
    assert "Tools run: " in body and "text_the_caller (ok)" in body
    assert body.endswith("No text or email was sent during the call.")
    assert "Caller: help me" not in body  # the summary only, as asked
    assert done["caller_text"].state == "done"


def test_both_asked_for_come_in_one_text(tmp_path: Path) -> None:
    with twilio(SID, TOKEN) as sms:
        _call_asking_for(tmp_path, sms.url, "a summary", "yes", "the transcript")
        done = _jobs_run(tmp_path, sms.url, "The caller asked for help.")
    body = _to_the_caller(sms.requests)["Body"]
    assert "\nSummary: The caller asked for help. " in body
    assert "Caller: help me\nAgent: I'll text a summary of this call" in body
    assert "Agent: I'll text the transcript of this call" in body
    assert done["caller_text"].result.startswith("a summary and the transcript texted")


def test_without_the_callers_yes_no_text_is_queued(tmp_path: Path) -> None:
    with twilio(SID, TOKEN) as sms:
        _call_asking_for(tmp_path, sms.url, "the transcript", "no")
        done = _jobs_run(tmp_path, sms.url, "The caller changed their mind.")
    assert "caller_text" not in done
    assert sms.requests == []


def test_the_twilio_account_alone_is_enough_to_text_the_caller(tmp_path: Path) -> None:
    """As `appliance serve` builds its records: TWILIO_* set, no NOTIFY_SMS (the operator wants
    no texts), and the caller who asked still gets theirs."""

    async def main(url: str) -> tuple[list[tuple[str, str | None]], jobs.Done]:
        base = Settings.load(None)
        settings = dataclasses.replace(
            base,
            paths=PathSettings(data_dir=tmp_path, models_dir=tmp_path),
            twilio=TwilioSettings(
                account_sid=SID, auth_token=SecretStr(TOKEN), phone_number=SENDER, api_url=url
            ),
            integrations=base.integrations.model_copy(update={"notify_sms": None}),
        )
        clock = ManualClock()
        no_model = ScriptedLanguageModel(clock)  # the summary is not this test's
        records = build_records(
            settings, clock=clock, metrics=Metrics(), llm=no_model, embedder=_NoEmbedder()
        )
        await records.start()
        try:
            await records.db.run(_a_call_that_asked_for_the_transcript, clock.wall())
            planned = await records.db.run(_plan, records.post_call, clock.wall())
            done = await records.post_call.caller_text(
                jobs.Job(id=1, kind="caller_text", call_id="call-1", attempts=1)
            )
        finally:
            await records.db.aclose()
        return planned, done

    with twilio(SID, TOKEN) as sms:
        planned, done = asyncio.run(main(sms.url))
    assert ("caller_text", None) in planned
    assert dict(planned)["sms"] is not None  # the operator's text: NOTIFY_SMS is not set
    assert done.note.startswith(f"the transcript texted to the caller, {ANN} (SM")
    assert "Caller: Please text me the transcript." in _to_the_caller(sms.requests)["Body"]


def _a_call_that_asked_for_the_transcript(conn: apsw.Connection, now: float) -> None:
    info = CallInfo(call_id="call-1", line="twilio", caller=ANN, vouched=True)
    calls.open_call(conn, info, started=now, owner="test", memory="")
    said = "Please text me the transcript."
    calls.save_caller_words(conn, "call-1", turn=1, text=said, started=0.0, ended=1.0)
    arguments = json.dumps({"what": "the transcript"})
    actions.save_action(conn, "call-1", turn=2, kind="tool", name=TEXT_TOOL, arguments=arguments)
    actions.finish_tool(conn, "call-1", turn=2, name=TEXT_TOOL, ok=True, result="Not sent yet")
    with conn:
        calls.end_call(conn, "call-1", ended=now + 30, outcome="caller hung up")


def _plan(conn: apsw.Connection, post_call: PostCall, now: float) -> list[tuple[str, str | None]]:
    call = calls.find_call(conn, "call-1")
    assert call is not None
    return post_call.plan(conn, call, 1, now)


class _NoEmbedder:
    name = "none"
    dimensions = 384

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        raise AssertionError("nothing is embedded here")
