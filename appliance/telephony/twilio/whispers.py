"""Hand-off summaries waiting for the person who answers: the whisper of `<Dial><Number url>`.

When the REST API hands a caller to a person, `<Number url=...>` names a webhook that Twilio
requests once the person answers, before the two are connected; its TwiML is played to the person
alone. `Handoffs.dial` leaves the summary here under a random token and points `url` at the signed
`POST /twilio/whisper/{token}`, which answers `<Say>` with it. A summary is kept `ttl_s` (the
person may let it ring, and Twilio may ask twice); at most `max_held` wait, the oldest going
first.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict

from twilio.twiml.voice_response import VoiceResponse

from appliance.clock import Clock
from appliance.conversation.ports import Handoff
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.twilio.webhooks import SignatureCheck

__all__ = ["WHISPER_PATH", "Handoffs", "Whispers", "whisper_twiml"]

_log = logging.getLogger(__name__)
WHISPER_PATH = "/twilio/whisper/"


class Whispers:
    """Summaries by token, for a while."""

    def __init__(self, clock: Clock, *, ttl_s: float = 600.0, max_held: int = 256) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_held = max_held
        self._held: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def add(self, summary: str) -> str:
        """Keep `summary`; returns its token."""
        self._expire()
        while len(self._held) >= self._max_held:
            self._held.popitem(last=False)
        token = secrets.token_urlsafe(18)
        self._held[token] = (self._clock.now() + self._ttl_s, summary)
        return token

    def get(self, token: str) -> str | None:
        """The summary under `token`; None when there is none (unknown or expired)."""
        self._expire()
        held = self._held.get(token)
        return held[1] if held is not None else None

    def _expire(self) -> None:
        now = self._clock.now()
        while self._held and next(iter(self._held.values()))[0] <= now:
            self._held.popitem(last=False)


def whisper_twiml(summary: str) -> str:
    """What the person hears before the caller is connected."""
    response = VoiceResponse()
    response.say(summary)
    return str(response)


class Handoffs:
    """Hands live calls to people through the REST API, each with its whisper (the Dialer)."""

    def __init__(self, rest: TwilioCalls, whispers: Whispers, signatures: SignatureCheck) -> None:
        self._rest = rest
        self._whispers = whispers
        self._signatures = signatures

    async def dial(self, call_sid: str, handoff: Handoff) -> None:
        """`<Dial>` the person; raises TransferError."""
        url = None
        if handoff.summary and self._signatures.configured:
            token = self._whispers.add(handoff.summary)
            url = self._signatures.public_url(WHISPER_PATH + token)
        elif handoff.summary:
            _log.warning("the person will not hear the summary: BASE_URL is not set")
        await self._rest.dial(call_sid, handoff.target, whisper_url=url)
