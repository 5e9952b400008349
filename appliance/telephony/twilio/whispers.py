"""Hand-offs in progress on Twilio: the person's whisper, and the way back if nobody answers.

When the REST API hands a caller to a person, `<Number url=...>` names a webhook that Twilio
requests once the person answers, before the two are connected; its TwiML is played to the person
alone. `<Dial action=...>` names the webhook Twilio requests when the dial is over, with
`DialCallStatus`. `Handoffs.dial` keeps the hand-off here under a random token and points `url`
at the signed `POST /twilio/whisper/{token}` (it answers `<Say>` with the summary) and `action` at
`POST /twilio/dialed/{token}`: when the person did not answer (`no-answer`, `busy`, `failed`,
`canceled`), the caller is connected back to the agent on a new stream, and the agent takes a
message. A hand-off is kept `ttl_s` (the person may let it ring, and Twilio may ask twice); at
most `max_held` wait, the oldest going first.
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

__all__ = ["DIALED_PATH", "WHISPER_PATH", "Handoffs", "Whispers", "whisper_twiml"]

_log = logging.getLogger(__name__)
WHISPER_PATH = "/twilio/whisper/"
DIALED_PATH = "/twilio/dialed/"


class Whispers:
    """Hand-offs by token, for a while."""

    def __init__(self, clock: Clock, *, ttl_s: float = 600.0, max_held: int = 256) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_held = max_held
        self._held: OrderedDict[str, tuple[float, Handoff]] = OrderedDict()

    def add(self, handoff: Handoff) -> str:
        """Keep `handoff`; returns its token."""
        self._expire()
        while len(self._held) >= self._max_held:
            self._held.popitem(last=False)
        token = secrets.token_urlsafe(18)
        self._held[token] = (self._clock.now() + self._ttl_s, handoff)
        return token

    def get(self, token: str) -> Handoff | None:
        """The hand-off under `token`; None when there is none (unknown or expired)."""
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
        if not self._signatures.configured:
            _log.warning("no whisper and no way back to the agent: BASE_URL is not set")
            await self._rest.dial(call_sid, handoff.target)
            return
        token = self._whispers.add(handoff)
        public = self._signatures.public_url
        await self._rest.dial(
            call_sid,
            handoff.target,
            whisper_url=public(WHISPER_PATH + token) if handoff.summary else None,
            action_url=public(DIALED_PATH + token),
        )
