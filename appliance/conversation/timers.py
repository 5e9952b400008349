"""The call's two timers: the no-input reprompt and the call's time limit.

The agent asks once whether anyone is there after `no_input_s` of silence (nobody speaking,
neither side), and says goodbye after the same again; a caller who speaks re-arms the
reprompt. At `max_call_s` the agent says goodbye whatever is going on. Each goodbye is due
once: after it, nothing more is.
"""

from __future__ import annotations

import enum

from appliance.clock import Clock

__all__ = ["CallTimers", "Due"]


class Due(enum.Enum):
    REPROMPT = "reprompt"
    """Ask whether anyone is there."""
    NO_INPUT = "no input"
    """Nobody answered the reprompt: say goodbye and hang up."""
    TIME_LIMIT = "time limit"
    """The call is as long as it may be: stop, say goodbye and hang up."""


class CallTimers:
    def __init__(self, clock: Clock, *, no_input_s: float, max_call_s: float) -> None:
        self._clock = clock
        self._no_input_s = no_input_s
        self._max_call_s = max_call_s
        self._started = clock.now()
        self._quiet_since = self._started
        self._reprompts = 0
        self._ending = False

    def caller_spoke(self) -> None:
        """The caller started speaking: a later silence gets a reprompt again."""
        self._reprompts = 0

    def quiet_from_now(self) -> None:
        """Somebody just stopped speaking (a reply ended): the silence starts now."""
        self._quiet_since = self._clock.now()

    def due(self, *, busy: bool) -> Due | None:
        """What is due now, if anything; `busy` while either side is speaking."""
        if self._ending:
            return None
        now = self._clock.now()
        if busy:
            self._quiet_since = now
        if now - self._started >= self._max_call_s:
            self._ending = True
            return Due.TIME_LIMIT
        if busy or now - self._quiet_since < self._no_input_s:
            return None
        self._reprompts += 1
        if self._reprompts == 1:
            return Due.REPROMPT
        self._ending = True
        return Due.NO_INPUT
