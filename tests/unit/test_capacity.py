"""How many calls at once: from one turn's measured engine time, not the core count."""

from __future__ import annotations

import pytest

from appliance.app.capacity import TurnCost, calls_for
from appliance.clock import LoopClock
from appliance.telephony.calls import Admission, Verdict


@pytest.mark.parametrize(
    ("stt_s", "first_s", "reply_s", "tts_s", "calls"),
    [
        (0.12, 0.20, 0.60, 0.05, 2),  # first audio 0.37 s, then 0.72 s behind each: 2 fit
        (0.12, 0.75, 1.60, 0.15, 1),  # the 1.5B here: one
        (0.05, 0.10, 0.20, 0.05, 3),  # a fast box: six would fit, the SIP line holds three
        (0.50, 1.50, 2.50, 0.40, 1),  # slower than the target: still one call, never none
    ],
)
def test_as_many_calls_as_can_take_a_turn_at_once_within_the_target(
    stt_s: float, first_s: float, reply_s: float, tts_s: float, calls: int
) -> None:
    cost = TurnCost(stt_s=stt_s, first_s=first_s, reply_s=reply_s, tts_s=tts_s)
    assert calls_for(cost, target_s=1.5, ceiling=3) == calls


def test_admission_takes_the_new_size_for_the_next_call() -> None:
    admission = Admission(clock=LoopClock(), max_calls=3, rate_limit=0)
    admission.active = 1
    assert admission.check("127.0.0.1") is Verdict.ADMIT
    admission.resize(1)
    assert admission.max_calls == 1
    assert admission.check("127.0.0.1") is Verdict.BUSY
    with pytest.raises(ValueError, match="at least 1"):
        admission.resize(0)
