"""One-time, short-lived tokens: exactly one Media Stream may attach to the call it was made for.

The voice webhook (signed by Twilio) issues a token and puts it in the TwiML as a `<Parameter>`;
Twilio hands it back in the stream's `start` message. The websocket itself is unauthenticated, so
this is what keeps anyone else from opening a stream: the token must be known, unused, unexpired
and presented with the same CallSid. A token is spent on its first use, right or wrong.

A signed webhook can be replayed (Twilio's signature has no timestamp), so a call gets one token:
`announced` says whether a CallSid was given one already, and the voice webhook refuses it again.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from appliance.clock import Clock
from appliance.conversation.ports import Handoff

__all__ = ["PendingCall", "StreamTokens"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call Twilio announced on the voice webhook, waiting for its stream."""

    call_sid: str
    caller: str
    callee: str
    issued_at: float = 0.0
    back_from: Handoff | None = None
    """The hand-off nobody answered, when the caller comes back to the agent."""


class StreamTokens:
    """Tokens issued and not yet used; bounded, oldest dropped (and logged) when full."""

    def __init__(
        self, clock: Clock, *, ttl_s: float = 30.0, capacity: int = 64, remembered: int = 4096
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._issued: OrderedDict[str, PendingCall] = OrderedDict()
        self._announced: OrderedDict[str, None] = OrderedDict()
        """CallSids given a token, newest last; the oldest are forgotten beyond `remembered`."""
        self._remembered = remembered

    def announced(self, call_sid: str) -> bool:
        """Whether `call_sid` was given a token already (its voice webhook is a replay)."""
        return call_sid in self._announced

    def issue(
        self,
        call_sid: str,
        *,
        caller: str = "",
        callee: str = "",
        back_from: Handoff | None = None,
    ) -> str:
        """A fresh token for the stream of `call_sid` (`back_from`: after a hand-off)."""
        self._expire()
        while len(self._issued) >= self._capacity:
            _, dropped = self._issued.popitem(last=False)
            _log.warning("too many streams pending; call %s can no longer attach", dropped.call_sid)
        self._announced[call_sid] = None
        self._announced.move_to_end(call_sid)
        while len(self._announced) > self._remembered:
            self._announced.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._issued[token] = PendingCall(
            call_sid, caller, callee, issued_at=self._clock.now(), back_from=back_from
        )
        return token

    def redeem(self, token: str, call_sid: str) -> PendingCall | None:
        """The call the token was issued for, once; None if it is unknown, used, expired or for
        another call."""
        self._expire()
        pending = self._issued.pop(token, None)
        if pending is None or not secrets.compare_digest(pending.call_sid, call_sid):
            return None
        return pending

    @property
    def pending(self) -> int:
        """Tokens issued, unused and unexpired: calls about to start."""
        self._expire()
        return len(self._issued)

    def _expire(self) -> None:
        deadline = self._clock.now() - self._ttl_s
        while self._issued:
            token, oldest = next(iter(self._issued.items()))
            if oldest.issued_at > deadline:
                break
            del self._issued[token]
