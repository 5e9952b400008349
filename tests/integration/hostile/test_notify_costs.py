"""Strangers' calls must not cost money: only calls worth it are emailed or texted, with limits.

The attack (issue 13): ten silent one-second calls each queued an email and a text to the
operator. Calls here go through the real records (SQLite, post-call jobs) and the jobs' sends
reach SendGrid and Twilio fakes on loopback that speak their wire formats; the jobs' results
say why a send was skipped.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from appliance.memory import jobs
from appliance.memory.postcall import NotifyLimits, NotifySettings
from appliance.telephony.wavfile import HangUp, Speak, Step
from appliance.tools.email import SendGridMailer
from appliance.tools.sms import TwilioTexter
from tests.support.fake_services import FakeService, sendgrid, twilio
from tests.support.fakes import say
from tests.support.records import ManualClock, RecordsKit, run_records

SID, TOKEN, KEY = "AC0123456789abcdef0123456789abcdef", "twilio-token", "SG.test-key"
NOTIFY = NotifySettings(
    email_to="owner@example.com", sms_to="+15550123", email_missing=None, sms_missing=None
)
SILENT: list[Step] = [HangUp(gap_ms=1000)]
ASKS: list[Step] = [Speak(say("weather", "paris")), HangUp()]


def _kit(root: Path, clock: ManualClock, mail: FakeService, sms: FakeService) -> RecordsKit:
    return RecordsKit(
        root,
        clock,
        notify=replace(NOTIFY, limits=LIMITS),
        mailer=SendGridMailer(api_key=KEY, sender="box@example.com", base_url=mail.url),
        texter=TwilioTexter(
            account_sid=SID, auth_token=TOKEN, sender="+15550100", base_url=sms.url
        ),
        replies=["It is sunny in Paris."] * 20,
    )


LIMITS = NotifyLimits(min_caller_turns=1, per_caller_per_hour=2, per_hour=20, sms_per_day=50)


def _calls(root: Path, calls: list[tuple[str, list[Step]]], limits: NotifyLimits) -> None:
    """Each (caller, steps) as one call, a minute apart, recorded under ids call-0, call-1..."""

    async def main() -> None:
        with sendgrid(KEY) as mail, twilio(SID, TOKEN) as sms:
            kit = _kit(root, ManualClock(), mail, sms)
            kit = await kit.replace(notify=replace(NOTIFY, limits=limits)).open()
            try:
                for n, (caller, steps) in enumerate(calls):
                    await kit.call(steps, caller=caller, call_id=f"call-{n}")
                    assert isinstance(kit.clock, ManualClock)
                    kit.clock.wall_s += 60
            finally:
                kit.close()

    run_records(main())


def _sent(root: Path, mail: FakeService, sms: FakeService) -> dict[str, dict[str, jobs.JobRecord]]:
    """Run the queued jobs against the fakes; each call's email and sms jobs as they ended."""

    async def main() -> list[jobs.JobRecord]:
        later = ManualClock(wall_s=ManualClock().wall_s + 3600)  # every call's jobs are due
        kit = await _kit(root, later, mail, sms).open()
        try:
            kit.job_llm.replies = ["A weather question.", "- none"] * 20
            await kit.records.runner.run_until_idle()  # type: ignore[union-attr]
            return await kit.records.db.run(jobs.jobs_of, None)
        finally:
            kit.close()

    done: dict[str, dict[str, jobs.JobRecord]] = {}
    for job in asyncio.run(main()):
        if job.kind in ("email", "sms") and job.call_id is not None:
            done.setdefault(job.call_id, {})[job.kind] = job
    return done


def test_silent_calls_from_strangers_send_nothing_and_a_real_call_still_does(
    tmp_path: Path, models_dir: Path
) -> None:
    strangers = [(f"+1555020{n:04d}", SILENT) for n in range(10)]
    _calls(tmp_path, [*strangers, ("+15550100", ASKS)], LIMITS)
    with sendgrid(KEY) as mail, twilio(SID, TOKEN) as sms:
        done = _sent(tmp_path, mail, sms)

        assert len(mail.requests) == 1 and len(sms.requests) == 1
    for n in range(10):
        for kind in ("email", "sms"):
            job = done[f"call-{n}"][kind]
            assert job.state == "skipped", job
            assert "NOTIFY_MIN_CALLER_TURNS" in job.result
    assert done["call-10"]["email"].state == "done"
    assert done["call-10"]["sms"].state == "done"
    assert "+15550100" in mail.requests[0].json()["subject"]  # type: ignore[index]


def test_one_caller_calling_again_and_again_is_notified_about_twice_an_hour(
    tmp_path: Path, models_dir: Path
) -> None:
    _calls(tmp_path, [("+15550100", ASKS)] * 3 + [("+15550111", ASKS)], LIMITS)
    with sendgrid(KEY) as mail, twilio(SID, TOKEN) as sms:
        done = _sent(tmp_path, mail, sms)

        assert len(mail.requests) == 3 and len(sms.requests) == 3
    assert [done[f"call-{n}"]["email"].state for n in range(4)] == [
        "done",
        "done",
        "skipped",
        "done",
    ]
    assert "NOTIFY_PER_CALLER_PER_HOUR (2) reached" in done["call-2"]["sms"].result


def test_texts_stop_at_the_daily_cap_and_emails_go_on(tmp_path: Path, models_dir: Path) -> None:
    callers = [(f"+1555030{n:04d}", ASKS) for n in range(3)]
    _calls(tmp_path, callers, replace(LIMITS, sms_per_day=2))
    with sendgrid(KEY) as mail, twilio(SID, TOKEN) as sms:
        done = _sent(tmp_path, mail, sms)

        assert len(mail.requests) == 3 and len(sms.requests) == 2
    assert done["call-2"]["sms"].state == "skipped"
    assert "NOTIFY_SMS_PER_DAY (2) reached" in done["call-2"]["sms"].result
    assert done["call-2"]["email"].state == "done"
