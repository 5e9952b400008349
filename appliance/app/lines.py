"""The phone lines from settings: who may call (admission), the SIP trunk, Twilio's endpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.clock import Clock
from appliance.observability.metrics import Metrics
from appliance.settings import LocalSettings, Settings, TwilioSettings
from appliance.telephony.calls import Admission, CallRouter, parse_networks
from appliance.telephony.digest import DigestAuth
from appliance.telephony.sip import Registration, SipConfig
from appliance.telephony.twilio.progress import CallProgress
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.twilio.streams import MediaStreams, Observe, StreamOptions
from appliance.telephony.twilio.tokens import StreamTokens
from appliance.telephony.twilio.webhooks import SignatureCheck
from appliance.telephony.twilio.whispers import Handoffs, Whispers
from appliance.web.twilio import TwilioEndpoints

if TYPE_CHECKING:
    from appliance.telephony.local.button import GpioButton
    from appliance.telephony.local.device import SoundCard

__all__ = [
    "TwilioLine",
    "admission_from",
    "gpio_button",
    "sip_config",
    "speakerphone",
    "twilio_line",
]

_log = logging.getLogger(__name__)


def admission_from(settings: Settings, clock: Clock) -> Admission:
    """Admission for every line; its sources, rate and digest come from the SIP settings (lines
    that report no source address or carry no credentials, like Twilio's, skip those checks)."""
    sip = settings.sip
    auth = None
    if sip.inbound_username and sip.inbound_password is not None:
        auth = DigestAuth(
            username=sip.inbound_username,
            password=sip.inbound_password.get_secret_value(),
            realm="tel3sis",
            clock=clock,
        )
    return Admission(
        clock=clock,
        max_calls=settings.calls.max_concurrent_calls,
        allowed=parse_networks(sip.allowed_sources),
        rate_limit=sip.rate_limit,
        rate_window_s=sip.rate_window_s,
        refusal=sip.refusal,
        auth=auth,
    )


def sip_config(settings: Settings, max_calls: int) -> SipConfig:
    """The SIP line's configuration (pjsua2's, in our words)."""
    sip = settings.sip
    registration = None
    if sip.registrar and sip.registrar_username and sip.registrar_password is not None:
        registration = Registration(
            registrar=sip.registrar,
            username=sip.registrar_username,
            password=sip.registrar_password.get_secret_value(),
            expires_s=sip.register_expires_s,
        )
    transports = tuple(t.strip().lower() for t in sip.transports.split(",") if t.strip())
    if max_calls >= sip.pjsua_max_calls:
        _log.warning(
            "MAX_CONCURRENT_CALLS (%d) leaves no pjsua call for refusing INVITEs "
            "(SIP_PJSUA_MAX_CALLS is %d): callers beyond it get 486 from pjsua itself",
            max_calls,
            sip.pjsua_max_calls,
        )
    return SipConfig(
        bind_address=sip.bind_address,
        port=sip.sip_port,
        transports=transports,  # type: ignore[arg-type]
        public_address=sip.public_address or "",
        rtp_port=sip.rtp_port,
        rtp_port_range=sip.rtp_port_range,
        codecs=tuple(c.strip() for c in sip.codecs.split(",") if c.strip()),
        registration=registration,
        rtp_timeout_s=sip.rtp_timeout_s,
        strict_rtp=sip.strict_rtp,
        ack_timeout_s=sip.ack_timeout_s,
        attended_transfer=sip.attended_transfer,
        max_calls=max_calls,
        pjsua_max_calls=sip.pjsua_max_calls,
        log_level=sip.pj_log_level,
        transfer_to=settings.integrations.escalation_phone_number or "",
    )


@dataclass(frozen=True, slots=True)
class TwilioLine:
    """Twilio's webhooks and media streams, and what must be stopped with them."""

    endpoints: TwilioEndpoints
    streams: MediaStreams
    rest: TwilioCalls | None
    """Twilio's REST API (transfers), when the account is configured."""

    async def close(self) -> None:
        """Hang up every stream and close the REST client."""
        await self.streams.hang_up_all()
        if self.rest is not None:
            await self.rest.aclose()


def twilio_line(
    router: CallRouter,
    account: TwilioSettings,
    *,
    escalation_number: str | None,
    clock: Clock,
    metrics: Metrics,
    api_url: str | None = None,
    observe: Observe | None = None,
) -> TwilioLine:
    """Twilio's endpoints for `account`; `api_url` points the REST client at another server (a
    fake Twilio) and `observe` watches each call's events."""
    token = account.auth_token.get_secret_value() if account.auth_token else None
    rest = (
        TwilioCalls(account.account_sid, token, api_base_url=api_url)
        if account.account_sid and token
        else None
    )
    tokens = StreamTokens(clock)
    signatures = SignatureCheck(token, account.base_url)
    whispers = Whispers(clock)
    handoffs = Handoffs(rest, whispers, signatures) if rest is not None else None
    streams = MediaStreams(
        router,
        tokens,
        clock=clock,
        metrics=metrics,
        options=StreamOptions(escalation_number=escalation_number),
        dial=handoffs.dial if handoffs is not None else None,
        observe=observe,
    )
    endpoints = TwilioEndpoints(
        signatures=signatures,
        admission=router.admission,
        tokens=tokens,
        streams=streams,
        progress=CallProgress(clock),
        metrics=metrics,
        account_sid=account.account_sid,
        whispers=whispers,
    )
    return TwilioLine(endpoints=endpoints, streams=streams, rest=rest)


def speakerphone(local: LocalSettings, metrics: Metrics | None = None) -> SoundCard:
    """The box's sound card from the settings, with its echo canceller; not yet opened; its
    restarts are counted in `metrics`. Raises EchoUnavailable (a RuntimeError naming the
    package) when libspeexdsp is missing."""
    from appliance.telephony.local.device import SoundCard  # noqa: PLC0415 - loads PortAudio
    from appliance.telephony.local.echo import EchoCanceller  # noqa: PLC0415

    echo = EchoCanceller(tail_ms=local.echo_tail_ms) if local.echo_cancel else None
    return SoundCard(
        local.device,
        rate=local.sample_rate,
        echo=echo,
        latency=local.latency_ms / 1000,
        metrics=metrics,
    )


def gpio_button(local: LocalSettings) -> GpioButton:
    """The speakerphone's push button (LOCAL_BUTTON), not yet opened; raises ButtonError when
    LOCAL_BUTTON is not CHIP:LINE."""
    from appliance.telephony.local.button import ButtonPin, GpioButton  # noqa: PLC0415

    return GpioButton(ButtonPin.parse(local.button))
