"""Call progress as Twilio reports it to the status callback: the latest status of recent calls."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from appliance.clock import Clock

__all__ = ["CallProgress", "CallStatus"]


@dataclass(frozen=True, slots=True)
class CallStatus:
    call_sid: str
    status: str
    """Twilio's CallStatus: queued, ringing, in-progress, completed, busy, failed, no-answer..."""
    duration_s: int | None
    at: float
    """Wall-clock seconds when the callback arrived."""


class CallProgress:
    """The latest status of the last `capacity` calls (oldest forgotten first)."""

    def __init__(self, clock: Clock, *, capacity: int = 256) -> None:
        self._clock = clock
        self._capacity = capacity
        self._calls: OrderedDict[str, CallStatus] = OrderedDict()

    def record(self, call_sid: str, status: str, duration_s: int | None = None) -> CallStatus:
        entry = CallStatus(call_sid, status, duration_s, at=self._clock.wall())
        self._calls.pop(call_sid, None)
        self._calls[call_sid] = entry
        while len(self._calls) > self._capacity:
            self._calls.popitem(last=False)
        return entry

    def get(self, call_sid: str) -> CallStatus | None:
        return self._calls.get(call_sid)

    def recent(self) -> list[CallStatus]:
        """Newest first."""
        return list(reversed(self._calls.values()))
