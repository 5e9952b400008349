"""Transcripts by email (SendGrid) and SMS (Twilio), against fakes that speak their wire formats."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from appliance.clock import Clock, LoopClock
from appliance.memory import jobs
from appliance.memory.postcall import NotifySettings
from appliance.telephony.wavfile import HangUp, Speak
from appliance.tools.email import SendGridMailer
from appliance.tools.sms import TwilioTexter
from tests.support.fake_services import (
    SENDGRID_400,
    SENDGRID_500,
    TWILIO_400,
    TWILIO_500,
    sendgrid,
    twilio,
)
from tests.support.fakes import say
from tests.support.records import ManualClock, RecordsKit, run_records

SID, TOKEN, KEY = "AC0123456789abcdef0123456789abcdef", "twilio-token", "SG.test-key"
NOTIFY = NotifySettings(
    email_to="owner@example.com", sms_to="+15550123", email_missing=None, sms_missing=None
)


def _record_a_call(root: Path, mail_url: str, sms_url: str) -> None:
    """In virtual time; the jobs it queues run later, in real time (HTTP needs real timeouts)."""

    async def main() -> None:
        kit = await _notifying(root, LoopClock(), mail_url, sms_url).open()
        try:
            kit.llm.replies = ["It is sunny in Paris."]
            await kit.call([Speak(say("weather", "paris")), HangUp()])
        finally:
            kit.close()

    run_records(main())


def _notifying(root: Path, clock: Clock, mail_url: str, sms_url: str) -> RecordsKit:
    return RecordsKit(
        root,
        clock,
        notify=NOTIFY,
        mailer=SendGridMailer(api_key=KEY, sender="box@example.com", base_url=mail_url),
        texter=TwilioTexter(
            account_sid=SID, auth_token=TOKEN, sender="+15550100", base_url=sms_url
        ),
    )


def test_a_500_is_retried_and_the_message_goes_out_in_the_services_format(
    tmp_path: Path, models_dir: Path
) -> None:
    clock = ManualClock()
    with sendgrid(KEY) as mail, twilio(SID, TOKEN) as sms:
        _record_a_call(tmp_path, mail.url, sms.url)
        mail.script.append(SENDGRID_500)
        sms.script.append(TWILIO_500)

        async def main() -> list[jobs.JobRecord]:
            kit = await _notifying(tmp_path, clock, mail.url, sms.url).open()
            try:
                kit.job_llm.replies = ["The caller asked about the weather in Paris.", "- none"]
                await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
                clock.wall_s += 31  # past the first backoff
                await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
                return await kit.records.db.run(jobs.jobs_of, "call-1")
            finally:
                kit.close()

        done = {j.kind: j for j in asyncio.run(main())}

    assert (done["email"].state, done["email"].attempts) == ("done", 2)
    assert (done["sms"].state, done["sms"].attempts) == ("done", 2)
    assert len(mail.requests) == 2 and len(sms.requests) == 2
    sent = mail.requests[-1].json()
    assert isinstance(sent, dict)
    assert sent["personalizations"] == [{"to": [{"email": "owner@example.com"}]}]
    assert sent["from"]["email"] == "box@example.com"
    assert sent["subject"].startswith("Call from +15550100")
    body = sent["content"][0]["value"]
    assert sent["content"][0]["type"] == "text/plain"
    assert "Summary: The caller asked about the weather in Paris." in body
    assert "Caller: weather paris" in body and "Agent: It is sunny in Paris." in body
    text = sms.requests[-1].form()
    assert (text["To"], text["From"]) == ("+15550123", "+15550100")
    assert "The caller asked about the weather in Paris." in text["Body"]
    assert "Caller: weather paris" in text["Body"] and len(text["Body"]) <= 1600
    assert done["email"].result.startswith("emailed to owner@example.com")
    assert done["sms"].result.startswith("texted to +15550123 (SM")


def test_a_400_is_recorded_as_failed_and_not_retried(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    with sendgrid(KEY) as mail, twilio(SID, TOKEN) as sms:
        _record_a_call(tmp_path, mail.url, sms.url)
        mail.script.append(SENDGRID_400)
        sms.script.append(TWILIO_400)

        async def main() -> list[jobs.JobRecord]:
            kit = await _notifying(tmp_path, clock, mail.url, sms.url).open()
            try:
                kit.job_llm.replies = ["A weather question.", "- none"]
                await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
                clock.wall_s += 7200
                await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
                return await kit.records.db.run(jobs.jobs_of, "call-1")
            finally:
                kit.close()

        with caplog.at_level(logging.ERROR):
            done = {j.kind: j for j in asyncio.run(main())}

    assert (done["email"].state, done["email"].attempts) == ("failed", 1)
    assert "SendGrid answered 400" in done["email"].result
    assert "valid address" in done["email"].result
    assert (done["sms"].state, done["sms"].attempts) == ("failed", 1)
    assert "Twilio answered 400" in done["sms"].result and "21211" in done["sms"].result
    assert len(mail.requests) == 1 and len(sms.requests) == 1
    assert "failed for good" in caplog.text


def test_wrong_credentials_are_refused_for_good(tmp_path: Path, models_dir: Path) -> None:
    with sendgrid("another-key") as mail, twilio(SID, "another-token") as sms:
        _record_a_call(tmp_path, mail.url, sms.url)

        async def main() -> list[jobs.JobRecord]:
            kit = await _notifying(tmp_path, ManualClock(), mail.url, sms.url).open()
            try:
                kit.job_llm.replies = ["x", "- none"]
                await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
                return await kit.records.db.run(jobs.jobs_of, "call-1")
            finally:
                kit.close()

        done = {j.kind: j for j in asyncio.run(main())}
    assert done["email"].state == "failed" and "401" in done["email"].result
    assert done["sms"].state == "failed" and "401" in done["sms"].result
