"""A message left for a person who could not take the call is kept with the call and passed on
after it: texted to the person reached by number, emailed to NOTIFY_EMAIL (the session with
scripted engines, the real records and jobs, in virtual time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from appliance.clock import LoopClock
from appliance.conversation.events import MessageTaken
from appliance.conversation.tools import ToolRegistry
from appliance.memory import jobs, messages
from appliance.memory.db import connect
from appliance.memory.postcall import NotifySettings
from appliance.telephony.wavfile import HangUp, Speak
from appliance.tools.transfer import transfer_tool
from tests.support.fakes import say, tool_call
from tests.support.records import RecordsKit, run_records

OFFICE = "+15550111"
WHO = "a member of staff"


@dataclass
class _Outbox:
    """A Texter and a Mailer that keep what they were asked to send."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    emails: list[tuple[str, str, str]] = field(default_factory=list)

    async def send_sms(self, to: str, body: str) -> str:
        self.texts.append((to, body))
        return f"SM{len(self.texts)}"

    async def send_email(self, to: str, subject: str, body: str) -> str:
        self.emails.append((to, subject, body))
        return ""


def _message_left(tmp_path: Path, outbox: _Outbox | None, notify: NotifySettings) -> list[object]:
    events: list[object] = []

    async def main() -> None:
        kit = RecordsKit(
            tmp_path,
            LoopClock(),
            replies=[[tool_call("transfer_to_person")], "I'll put you through."],
            notify=notify,
            mailer=outbox,
            texter=outbox,
            tools=ToolRegistry([transfer_tool([], OFFICE)]),
        )
        await kit.open()
        try:
            # The WAV line cannot transfer: the hand-off fails and the next turn is the message.
            await kit.call(
                [Speak(say("help")), Speak(say("book", "more", "time")), HangUp()],
                on_event=events.append,
            )
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
        finally:
            kit.close()

    run_records(main())
    return events


def test_a_message_is_kept_and_passed_on_by_text_and_email(tmp_path: Path) -> None:
    outbox = _Outbox()
    notify = NotifySettings(
        email_to="owner@example.com", sms_to=None, email_missing=None, sms_missing="not here"
    )
    events = _message_left(tmp_path, outbox, notify)
    (taken,) = [e for e in events if isinstance(e, MessageTaken)]
    assert (taken.to, taken.target, taken.text) == (WHO, OFFICE, "book more time")

    conn = connect(tmp_path / "data" / "tel3sis.db")
    assert messages.messages_of(conn, "call-1") == [
        messages.TakenMessage(WHO, OFFICE, "book more time")
    ]
    done = {j.kind: j for j in jobs.jobs_of(conn, "call-1")}
    assert done["message"].state == "done"
    assert done["message"].result == f"texted to {OFFICE}; emailed to owner@example.com"
    said = f'Message for {WHO} from +15550100: "book more time"'
    assert outbox.texts == [(OFFICE, said)]
    assert (
        "owner@example.com",
        f"Message for {WHO} from +15550100",
        said,
    ) in outbox.emails


def test_with_nowhere_to_send_it_the_message_stays_on_the_record(tmp_path: Path) -> None:
    notify = NotifySettings(email_to=None, sms_to=None, email_missing="no", sms_missing="no")
    _message_left(tmp_path, None, notify)
    conn = connect(tmp_path / "data" / "tel3sis.db")
    assert [m.text for m in messages.messages_of(conn, "call-1")] == ["book more time"]
    (job,) = [j for j in jobs.jobs_of(conn, "call-1") if j.kind == "message"]
    assert job.state == "skipped" and "stays on the call's record" in job.result
