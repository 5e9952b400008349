"""The call records from settings: database, recordings, caller memory, post-call jobs, live
session state, and the senders that mail and text transcripts."""

from __future__ import annotations

from appliance.clock import Clock
from appliance.conversation.ports import Embedder, LanguageModel, Mailer, Texter
from appliance.memory.db import Database, database_path
from appliance.memory.postcall import NotifyLimits, NotifySettings, PostCall
from appliance.memory.records import Records
from appliance.memory.session import InProcessState, RedisState, ResilientState, SessionState
from appliance.observability.metrics import Metrics
from appliance.settings import Settings
from appliance.tools.email import SendGridMailer
from appliance.tools.sms import TwilioTexter

__all__ = ["build_records", "messengers"]

_DB_TIMEOUT_S = 30.0
"""A database stuck this long (a failing SD card) fails the work that waits on it."""


def build_records(
    settings: Settings, *, clock: Clock, metrics: Metrics, llm: LanguageModel, embedder: Embedder
) -> Records:
    """The call records; opens nothing yet (`Records.start`)."""
    assert settings.paths.database_url is not None
    db = Database(database_path(settings.paths.database_url), timeout=_DB_TIMEOUT_S)
    mailer, texter, notify = _notifiers(settings)
    conv = settings.conversation
    post_call = PostCall(
        db,
        llm=llm,
        embedder=embedder,
        mailer=mailer,
        texter=texter,
        notify=notify,
        recordings=settings.paths.recordings,
        retention_days=settings.records.retention_days,
        remember=settings.records.remember_callers,
        min_confidence=settings.records.memory_min_confidence,
        agent_name=conv.agent_name,
        business_name=conv.business_name,
        wall=clock.wall,
    )
    state: SessionState = InProcessState()
    redis_url = settings.integrations.redis_url
    if redis_url:
        state = ResilientState(
            RedisState(redis_url),
            now=clock.now,
            on_fallback=metrics.session_state_fallbacks.inc,
        )
    return Records(
        db,
        post_call=post_call,
        embedder=embedder,
        state=state,
        clock=clock,
        recordings=settings.paths.recordings,
        record=settings.records.record_calls,
        remember=settings.records.remember_callers,
        metrics=metrics,
    )


def messengers(settings: Settings) -> tuple[Mailer | None, Texter | None]:
    """Email (SendGrid) and text (Twilio) senders wherever their credentials are set, for the
    tools that send on the caller's behalf (a hand-off's summary to the person)."""
    integ, twilio = settings.integrations, settings.twilio
    mailer: Mailer | None = None
    texter: Texter | None = None
    if integ.sendgrid_api_key is not None and integ.sendgrid_from_email:
        mailer = SendGridMailer(
            api_key=integ.sendgrid_api_key.get_secret_value(),
            sender=integ.sendgrid_from_email,
            base_url=integ.sendgrid_api_url,
        )
    if twilio.account_sid and twilio.auth_token is not None and twilio.phone_number:
        texter = TwilioTexter(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token.get_secret_value(),
            sender=twilio.phone_number,
            base_url=twilio.api_url,
        )
    return mailer, texter


def _unset(**values: object) -> list[str]:
    return [name for name, value in values.items() if not value]


def _notifiers(settings: Settings) -> tuple[Mailer | None, Texter | None, NotifySettings]:
    """SendGrid and Twilio senders where configured, and why not where not."""
    integ, twilio = settings.integrations, settings.twilio
    mailer: Mailer | None = None
    email_unset = _unset(
        NOTIFY_EMAIL=integ.notify_email,
        SENDGRID_API_KEY=integ.sendgrid_api_key,
        SENDGRID_FROM_EMAIL=integ.sendgrid_from_email,
    )
    if not email_unset:
        assert integ.sendgrid_api_key is not None and integ.sendgrid_from_email is not None
        mailer = SendGridMailer(
            api_key=integ.sendgrid_api_key.get_secret_value(),
            sender=integ.sendgrid_from_email,
            base_url=integ.sendgrid_api_url,
        )
    sms_unset = _unset(
        NOTIFY_SMS=integ.notify_sms,
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_PHONE_NUMBER=twilio.phone_number,
    )
    # With the Twilio account alone (no NOTIFY_SMS), the jobs still text a message to the person
    # it was left for and a transcript to the caller who asked for it; the `sms` job to
    # NOTIFY_SMS is skipped (`sms_missing`).
    _, texter = messengers(settings)
    notify = NotifySettings(
        email_to=integ.notify_email,
        sms_to=integ.notify_sms,
        email_missing=(
            f"call transcripts are not emailed: {', '.join(email_unset)} not set"
            if email_unset
            else None
        ),
        sms_missing=(
            f"call transcripts are not texted: {', '.join(sms_unset)} not set"
            if sms_unset
            else None
        ),
        limits=NotifyLimits(
            min_caller_turns=integ.notify_min_caller_turns,
            per_caller_per_hour=integ.notify_per_caller_per_hour,
            per_hour=integ.notify_per_hour,
            sms_per_day=integ.notify_sms_per_day,
        ),
    )
    return mailer, texter, notify
